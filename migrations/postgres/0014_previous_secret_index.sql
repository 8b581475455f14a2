-- Siteverify finds a project by its secret or, during a rotation's overlap, by the previous
-- one: both need an index, or every call scans the projects.
CREATE INDEX projects_previous_secret_hash ON projects (previous_secret_hash);
