CREATE TABLE account_settings (
    account_id bigint  PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    timezone   text    NOT NULL DEFAULT 'UTC',
    newsletter boolean NOT NULL DEFAULT false
);

-- Backfill: every existing account gets default settings.
INSERT INTO account_settings (account_id)
SELECT id FROM accounts
ON CONFLICT (account_id) DO NOTHING;
