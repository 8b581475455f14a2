-- The rest of a Custom preset: the environment check's obfuscation level, challenge starts
-- allowed per hashed IP in two minutes, and the risk score (in tenths, 10 to 100) at which
-- enforce mode blocks. NULL for the named presets, whose values are fixed in code.
ALTER TABLE projects ADD COLUMN custom_obfuscation TEXT;
ALTER TABLE projects ADD COLUMN custom_rate_limit BIGINT;
ALTER TABLE projects ADD COLUMN custom_block_threshold BIGINT;
