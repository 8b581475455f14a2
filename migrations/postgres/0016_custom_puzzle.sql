-- A Custom preset's kind of work (sha256 or rsw) and an RSW puzzle's squarings. NULL for the
-- named presets and for Custom presets from before the columns existed: SHA-256, and
-- Balanced's squarings.
ALTER TABLE projects ADD COLUMN custom_puzzle TEXT;
ALTER TABLE projects ADD COLUMN custom_squarings BIGINT;
