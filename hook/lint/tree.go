package lint

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The parse tree is read from libpg_query's JSON output into the few node types the rules look
// at, rather than through pg_query_go's generated protobuf types: those (with the protobuf
// runtime) would add about 4 MB to a binary whose image should stay small, for nodes we never
// read. Unknown node types and fields are skipped by encoding/json. Field names are
// libpg_query's (PostgreSQL 17 grammar).

type parseResult struct {
	Stmts []rawStmt `json:"stmts"`
}

type rawStmt struct {
	Stmt         node `json:"stmt"`
	StmtLocation int  `json:"stmt_location"` // byte offset; the statement's leading comments included
}

// node is libpg_query's Node: exactly one field is set (for the types modelled here).
type node struct {
	CreateStmt *struct {
		Relation rangeVar `json:"relation"`
	} `json:"CreateStmt"`
	CreateTableAsStmt *struct {
		Into struct {
			Rel rangeVar `json:"rel"`
		} `json:"into"`
	} `json:"CreateTableAsStmt"`
	IndexStmt *struct {
		Idxname    string   `json:"idxname"`
		Relation   rangeVar `json:"relation"`
		Concurrent bool     `json:"concurrent"`
	} `json:"IndexStmt"`
	DropStmt *struct {
		Objects    []node `json:"objects"`
		RemoveType string `json:"removeType"`
		Concurrent bool   `json:"concurrent"`
	} `json:"DropStmt"`
	RenameStmt *struct {
		RenameType   string   `json:"renameType"`
		RelationType string   `json:"relationType"`
		Relation     rangeVar `json:"relation"`
		Subname      string   `json:"subname"`
		Newname      string   `json:"newname"`
	} `json:"RenameStmt"`
	TransactionStmt *struct {
		Kind string `json:"kind"` // TRANS_STMT_BEGIN, TRANS_STMT_COMMIT, …
	} `json:"TransactionStmt"`
	ReindexStmt *struct {
		Params []node `json:"params"`
	} `json:"ReindexStmt"`
	AlterTableStmt *struct {
		Relation rangeVar `json:"relation"`
		Cmds     []node   `json:"cmds"`
		Objtype  string   `json:"objtype"`
	} `json:"AlterTableStmt"`
	AlterTableCmd *struct {
		Subtype string `json:"subtype"`
		Name    string `json:"name"`
		Def     *node  `json:"def"`
	} `json:"AlterTableCmd"`
	ColumnDef  *columnDef `json:"ColumnDef"`
	Constraint *struct {
		Contype        string `json:"contype"`
		Conname        string `json:"conname"`
		SkipValidation bool   `json:"skip_validation"`
	} `json:"Constraint"`
	List *struct {
		Items []node `json:"items"`
	} `json:"List"`
	String *struct {
		Sval string `json:"sval"`
	} `json:"String"`
	DefElem *struct {
		Defname string `json:"defname"`
	} `json:"DefElem"`
	InsertStmt *dmlStmt `json:"InsertStmt"`
	UpdateStmt *dmlStmt `json:"UpdateStmt"`
	DeleteStmt *dmlStmt `json:"DeleteStmt"`
}

// dmlStmt is the part of INSERT, UPDATE and DELETE the rules read: the target table.
type dmlStmt struct {
	Relation rangeVar `json:"relation"`
}

type rangeVar struct {
	Schemaname string `json:"schemaname"`
	Relname    string `json:"relname"`
}

type columnDef struct {
	Colname     string          `json:"colname"`
	TypeName    typeName        `json:"typeName"`
	IsNotNull   bool            `json:"is_not_null"`
	RawDefault  json.RawMessage `json:"raw_default"`
	Identity    string          `json:"identity"`
	Generated   string          `json:"generated"`
	Constraints []node          `json:"constraints"`
}

type typeName struct {
	Names []node `json:"names"`
}

// String renders the type name without the pg_catalog qualifier the grammar adds to built-ins
// (int is pg_catalog.int4).
func (t typeName) String() string {
	var parts []string
	for _, n := range t.Names {
		if n.String != nil && n.String.Sval != "pg_catalog" {
			parts = append(parts, n.String.Sval)
		}
	}
	return strings.Join(parts, ".")
}

// requiredWithoutDefault: NOT NULL and nothing that fills existing and old-release rows.
func (c *columnDef) requiredWithoutDefault() bool {
	notNull, filled := c.IsNotNull, len(c.RawDefault) > 0 || c.Identity != "" || c.Generated != ""
	for _, n := range c.Constraints {
		if n.Constraint == nil {
			continue
		}
		switch n.Constraint.Contype {
		case "CONSTR_NOTNULL", "CONSTR_PRIMARY":
			notNull = true
		case "CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED":
			filled = true
		}
	}
	return notNull && !filled
}

// lastName is the last part of a possibly qualified name (a List of String nodes).
func (n node) lastName() string {
	if n.List == nil || len(n.List.Items) == 0 || n.List.Items[len(n.List.Items)-1].String == nil {
		return ""
	}
	return n.List.Items[len(n.List.Items)-1].String.Sval
}

// parse runs PostgreSQL's parser. A syntax error is a *pgparser.Error (see parseToJSON) with the position.
func parse(sql string) (*parseResult, error) {
	out, err := parseToJSON(sql)
	if err != nil {
		return nil, err
	}
	var tree parseResult
	if err := json.Unmarshal([]byte(out), &tree); err != nil {
		return nil, fmt.Errorf("reading the parse tree: %w", err)
	}
	return &tree, nil
}
