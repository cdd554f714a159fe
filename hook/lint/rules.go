package lint

// Rule names. They are part of the interface: lint-ignore directives and JSON consumers name
// them, so never rename one.
const (
	// File-level rules: they cannot be silenced with lint-ignore.
	RuleSyntaxError      = "syntax-error"      // the file does not parse
	RuleInvalidFile      = "invalid-file"      // bad file name, duplicate version, down without up
	RuleInvalidDirective = "invalid-directive" // malformed directive or unknown rule in lint-ignore
	RuleMissingDown      = "missing-down"      // up file without down file, not marked irreversible
	// RuleTransactionControl: BEGIN, COMMIT, SAVEPOINT … in a file schemahook runs in a transaction.
	RuleTransactionControl = "transaction-control"

	// Compatibility: the release still serving during pre-upgrade breaks (up files only).
	RuleDropTable         = "drop-table"
	RuleDropColumn        = "drop-column"
	RuleRenameTable       = "rename-table"
	RuleRenameColumn      = "rename-column"
	RuleChangeColumnType  = "change-column-type"
	RuleAddRequiredColumn = "add-required-column"
	RuleSetNotNull        = "set-not-null"

	// Lock hazards on tables that existed before the migration (up and down files).
	RuleIndexNotConcurrent        = "create-index-not-concurrently"
	RuleConstraintNotValid        = "constraint-not-valid"
	RuleConcurrentlyInTransaction = "concurrently-in-transaction"
	RuleDMLAfterDDL               = "dml-after-ddl"
)

// RuleInfo documents one rule.
type RuleInfo struct {
	Name     string `json:"name"`
	Summary  string `json:"summary"`
	Fix      string `json:"fix"`
	Silence  bool   `json:"can_ignore"` // can be silenced per statement with lint-ignore
	UpOnly   bool   `json:"up_only"`    // checked in up files only
	Category string `json:"category"`
}

// Rules lists every rule, in the order they are documented.
var Rules = []RuleInfo{
	{Name: RuleSyntaxError, Category: "file", Summary: "the file is not valid PostgreSQL SQL",
		Fix: "fix the statement at the reported position; the message is PostgreSQL's own parser's"},
	{Name: RuleInvalidFile, Category: "file", Summary: "the file name or the set of files is invalid",
		Fix: "name files NNNNNN_name.up.sql / NNNNNN_name.down.sql with one name per version"},
	{Name: RuleInvalidDirective, Category: "file", Summary: "a -- schemahook: directive is malformed or names an unknown rule",
		Fix: "write -- schemahook:lint-ignore RULE[,RULE] REASON with rule names from `schemahook lint --rules`"},
	{Name: RuleMissingDown, Category: "file", Summary: "an up file has no down file",
		Fix: "add the down file that undoes the up file (`schemahook verify` checks it), or mark the up file -- schemahook:irreversible"},
	{Name: RuleTransactionControl, Category: "file",
		Summary: "a transactional file has BEGIN, COMMIT, ROLLBACK, SAVEPOINT or other transaction control of its own; schemahook runs each file in a transaction with its version row, and every command refuses such a file",
		Fix:     "remove the transaction control statements (golang-migrate files often wrap themselves in BEGIN/COMMIT), or mark the file -- schemahook:no-transaction to run it statement by statement"},

	{Name: RuleDropTable, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "DROP TABLE breaks the release still serving during pre-upgrade, which uses the table",
		Fix:     "stop using the table in one release and drop it in a later one; then silence this with a lint-ignore that says which release stopped using it"},
	{Name: RuleDropColumn, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "DROP COLUMN breaks the release still serving during pre-upgrade, which reads or writes the column",
		Fix:     "stop using the column in one release and drop it in a later one; then silence this with a lint-ignore that says which release stopped using it"},
	{Name: RuleRenameTable, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "renaming a table breaks the release still serving during pre-upgrade, which uses the old name",
		Fix:     "create the new table (or a view with the new name), switch the application in one release, drop the old name in a later one"},
	{Name: RuleRenameColumn, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "renaming a column breaks the release still serving during pre-upgrade, which uses the old name",
		Fix:     "add the new column, write both and backfill, switch reads in the next release, drop the old column in a later one"},
	{Name: RuleChangeColumnType, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "changing a column's type can break the old release's queries and rewrites the table under an ACCESS EXCLUSIVE lock",
		Fix:     "add a column with the new type, backfill it in batches, switch the application, drop the old column in a later release"},
	{Name: RuleAddRequiredColumn, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "ADD COLUMN ... NOT NULL without a DEFAULT fails on a populated table and breaks the old release's INSERTs, which do not set it",
		Fix:     "give the column a constant DEFAULT (instant since PostgreSQL 11), or add it nullable, backfill, and enforce NOT NULL in a later release"},
	{Name: RuleSetNotNull, Category: "compatibility", Silence: true, UpOnly: true,
		Summary: "SET NOT NULL breaks the old release's writes that leave the column empty, and scans the table under an ACCESS EXCLUSIVE lock",
		Fix:     "once every running release sets the column: ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL (PostgreSQL 12+ skips the scan)"},

	{Name: RuleIndexNotConcurrent, Category: "locking", Silence: true,
		Summary: "CREATE INDEX without CONCURRENTLY blocks every write to an existing table while the index builds",
		Fix:     "use CREATE INDEX CONCURRENTLY in its own migration file marked -- schemahook:no-transaction (with DROP INDEX CONCURRENTLY IF EXISTS first, so a rerun after a failed build works)"},
	{Name: RuleConstraintNotValid, Category: "locking", Silence: true,
		Summary: "adding a FOREIGN KEY or CHECK constraint to an existing table without NOT VALID, or validating it in the same transaction, scans the table while holding a lock that blocks writes",
		Fix:     "add the constraint with NOT VALID, then VALIDATE CONSTRAINT in a later migration: validation alone takes only a SHARE UPDATE EXCLUSIVE lock"},
	{Name: RuleConcurrentlyInTransaction, Category: "locking", Silence: true,
		Summary: "CONCURRENTLY cannot run inside a transaction, and schemahook runs every file in one unless it says otherwise",
		Fix:     "move the statement into its own migration file marked -- schemahook:no-transaction"},
	{Name: RuleDMLAfterDDL, Category: "locking", Silence: true,
		Summary: "INSERT, UPDATE or DELETE on a table after ALTER TABLE or CREATE INDEX on it in the same transaction: the DDL's lock (ACCESS EXCLUSIVE for most ALTER TABLE forms) is held until the commit, so every query on the table waits for the whole backfill",
		Fix:     "move the backfill into a migration file of its own marked -- schemahook:no-transaction (which also ends the run's shared transaction before it), and update in batches of a few thousand rows"},
}

// Lookup returns the rule named name, or nil.
func Lookup(name string) *RuleInfo {
	for i := range Rules {
		if Rules[i].Name == name {
			return &Rules[i]
		}
	}
	return nil
}
