-- One row per generation cycle started by "invctl start". invgen --wait
-- adds each committed batch to "generated" in the same transaction as
-- the rows themselves, so a generator restarted mid-cycle knows exactly
-- how many the cycle already has, and the cycle ends with exactly its
-- target in the database.
CREATE TABLE generation_cycles (
	cycle_key	TEXT PRIMARY KEY,
	target		BIGINT NOT NULL CHECK (target >= 0),
	generated	BIGINT NOT NULL DEFAULT 0 CHECK (generated >= 0),
	last_id		BIGINT,
	started_at	TIMESTAMPTZ NOT NULL,
	updated_at	TIMESTAMPTZ NOT NULL DEFAULT now()
);
