-- Counts the resumes of each participant. Claims, handovers and gap records name the membership
-- (epoch) they belong to, so one published or read late, for an older membership, is ignored.
ALTER TABLE participants ADD COLUMN epoch integer NOT NULL DEFAULT 0;
