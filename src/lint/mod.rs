//! Safety lint (SPEC 8): phase-aware checks over the files only, no database.
//!
//! Each section is split with the project's splitter and each statement read
//! from its code tokens, so text in literals, comments, quoted identifiers and
//! dollar quotes never counts. The rules know which section a statement is
//! in: a `DROP COLUMN` is the point of `@drop` and an error in `@add`.
//!
//! The rules are documented, with examples, in `docs/lint-rules.md`.

mod allow;
mod facts;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use crate::dialect::Dialect;
use crate::lexer::{Lexer, Token};
use crate::parser::{Migration, NotAMarker, Section};
use crate::phase::SectionKind;
use crate::text::closest;
use allow::Comments;
use facts::{Fact, Object};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Warning,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem found in a version file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    /// Line of the offending token (or of the marker, for section rules).
    pub line: usize,
    pub rule: String,
    pub level: Level,
    /// One line: what is wrong and why.
    pub message: String,
    /// One line: what to do instead.
    pub fix: String,
}

impl Finding {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.path.display().to_string(),
            "line": self.line,
            "rule": self.rule,
            "level": self.level.name(),
            "message": self.message,
            "fix": self.fix,
        })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}[{}]: {}\n  fix: {}",
            self.path.display(),
            self.line,
            self.level,
            self.rule,
            self.message,
            self.fix
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub summary: &'static str,
    /// The dialects it applies to; empty means all.
    pub dialects: &'static [Dialect],
}

impl Rule {
    pub fn applies_to(&self, dialect: Dialect) -> bool {
        self.dialects.is_empty() || self.dialects.contains(&dialect)
    }
}

const DROP_IN_ADD: Rule = Rule {
    id: "drop-in-add",
    level: Level::Error,
    summary: "DROP TABLE/COLUMN/INDEX/VIEW/SEQUENCE/SCHEMA or DROP PARTITION in `@add`, while old code still uses it",
    dialects: &[],
};
const RENAME_IN_ADD: Rule = Rule {
    id: "rename-in-add",
    level: Level::Error,
    summary: "a table, view or column renamed in `@add`: old code still uses the old name",
    dialects: &[],
};
const TYPE_CHANGE_IN_ADD: Rule = Rule {
    id: "type-change-in-add",
    level: Level::Error,
    summary: "a column's type changed in `@add` (`ALTER COLUMN … TYPE`, MySQL `MODIFY`/`CHANGE`)",
    dialects: &[],
};
const UNBOUNDED_DML: Rule = Rule {
    id: "unbounded-dml",
    level: Level::Error,
    summary: "DELETE or UPDATE without WHERE, or TRUNCATE, on an existing table in `@add`",
    dialects: &[],
};
const DATA_LOSS_IN_SIMDROP: Rule = Rule {
    id: "data-loss-in-simdrop",
    level: Level::Warning,
    summary: "data removed in `@simdrop` (DROP TABLE/COLUMN/PARTITION, TRUNCATE, DELETE/UPDATE without WHERE): `@rollback_simdrop` cannot bring it back",
    dialects: &[],
};
const NOT_NULL_WITHOUT_DEFAULT: Rule = Rule {
    id: "not-null-without-default",
    level: Level::Error,
    summary: "a NOT NULL column without a DEFAULT added to an existing table",
    dialects: &[],
};
const MISSING_ROLLBACK: Rule = Rule {
    id: "missing-rollback",
    level: Level::Warning,
    summary: "`@add`/`@simdrop` runs SQL but its rollback section is missing or empty",
    dialects: &[],
};
const ROLLBACK_INCOMPLETE: Rule = Rule {
    id: "rollback-incomplete",
    level: Level::Warning,
    summary: "`@rollback_add` does not drop a table, column, index, view, trigger, … that `@add` creates",
    dialects: &[],
};
const INDEX_NOT_CONCURRENT: Rule = Rule {
    id: "index-not-concurrent",
    level: Level::Error,
    summary: "CREATE INDEX without CONCURRENTLY on an existing table: writes block until it is built",
    dialects: &[Dialect::Postgres],
};
const CONCURRENTLY_IN_TRANSACTION: Rule = Rule {
    id: "concurrently-in-transaction",
    level: Level::Error,
    summary: "CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY or DETACH PARTITION CONCURRENTLY in a section without `no-transaction`",
    dialects: &[Dialect::Postgres],
};
const CONSTRAINT_NOT_VALID: Rule = Rule {
    id: "constraint-not-valid",
    level: Level::Error,
    summary: "ADD CONSTRAINT … FOREIGN KEY/CHECK without NOT VALID on an existing table: every row is checked under an exclusive lock",
    dialects: &[Dialect::Postgres],
};
const SET_NOT_NULL: Rule = Rule {
    id: "set-not-null",
    level: Level::Warning,
    summary: "ALTER COLUMN … SET NOT NULL on an existing table: a full scan under an exclusive lock",
    dialects: &[Dialect::Postgres],
};
const MYSQL_ONLINE_DDL: Rule = Rule {
    id: "mysql-online-ddl",
    level: Level::Warning,
    summary: "ALTER TABLE on an existing table without `ALGORITHM=INSTANT` or `ALGORITHM=INPLACE, LOCK=NONE`",
    dialects: &[Dialect::Mysql],
};
const UNKNOWN_ALLOW: Rule = Rule {
    id: "unknown-allow",
    level: Level::Warning,
    summary: "a `pygrate:allow` comment names a rule that does not exist, so it silences nothing",
    dialects: &[],
};

const INDENTED_MARKER: Rule = Rule {
    id: "indented-marker",
    level: Level::Error,
    summary: "a `-- @section` line that is indented, has extra dashes or an invisible character is a comment, not a marker: the SQL below it belongs to the section above",
    dialects: &[],
};

/// Every rule, in the order of `docs/lint-rules.md`.
pub const RULES: &[Rule] = &[
    DROP_IN_ADD,
    RENAME_IN_ADD,
    TYPE_CHANGE_IN_ADD,
    UNBOUNDED_DML,
    DATA_LOSS_IN_SIMDROP,
    NOT_NULL_WITHOUT_DEFAULT,
    MISSING_ROLLBACK,
    ROLLBACK_INCOMPLETE,
    INDEX_NOT_CONCURRENT,
    CONCURRENTLY_IN_TRANSACTION,
    CONSTRAINT_NOT_VALID,
    SET_NOT_NULL,
    MYSQL_ONLINE_DDL,
    UNKNOWN_ALLOW,
    INDENTED_MARKER,
];

/// Every finding in one version file, in line order. A section whose
/// statements don't lex is skipped here (the parser/executor report that error).
pub fn lint_migration(m: &Migration, dialect: Dialect) -> Vec<Finding> {
    lint_sections(m, &SectionKind::ALL, dialect)
}

/// Only the findings for the given sections of a migration (the gate before
/// running: lint what is about to run). A finding belongs to the section it
/// is about: `missing-rollback` and `rollback-incomplete` to the forward one.
pub fn lint_sections(m: &Migration, kinds: &[SectionKind], dialect: Dialect) -> Vec<Finding> {
    let file = FileFacts::read(m, dialect);
    let mut sink = Sink { path: &m.path, dialect, findings: Vec::new() };
    for section in file.sections.iter().filter(|s| kinds.contains(&s.section.kind)) {
        unknown_allows(&mut sink, section);
        marker_lookalikes(&mut sink, section);
        for (index, statement) in section.statements.iter().enumerate() {
            for fact in &statement.facts {
                statement_rules(&mut sink, &file, section, (index, statement), fact);
            }
        }
        missing_rollback(&mut sink, &file, section);
        if section.section.kind == SectionKind::Add {
            rollback_incomplete(&mut sink, &file, section);
        }
    }
    let mut findings = sink.findings;
    findings.sort_by(|a, b| (a.line, &a.rule).cmp(&(b.line, &b.rule)));
    findings
}

/// The facts of every section that lexes, and what `@add` creates.
struct FileFacts<'m> {
    migration: &'m Migration,
    sections: Vec<SectionFacts<'m>>,
    /// Tables `@add` creates, with the index of the statement creating
    /// each: from there on nothing else uses them yet. Before it, the name
    /// is the existing table's (`DROP TABLE t; CREATE TABLE t …` drops data).
    new_tables: HashMap<String, usize>,
    /// Schemas created by the `@add` section, and the index of the statement.
    new_schemas: HashMap<String, usize>,
    /// (table, column) pairs `@add` adds: an `@add` backfill may write them.
    added_columns: HashSet<(String, String)>,
    /// Views `@add` (re)creates: dropping one first is a replacement.
    created_views: HashSet<String>,
}

struct SectionFacts<'m> {
    section: &'m Section,
    statements: Vec<StatementFacts>,
    comments: Comments,
}

struct StatementFacts {
    facts: Vec<Fact>,
    /// Rules silenced by `pygrate:allow` comments on or above it.
    allow: Vec<String>,
}

impl<'m> FileFacts<'m> {
    fn read(m: &'m Migration, dialect: Dialect) -> Self {
        let mut sections = Vec::new();
        for section in m.sections() {
            let Ok(statements) = section.statements(&m.path, dialect) else {
                continue;
            };
            let comments = Comments::new(&section.body, section.body_line(), &statements, dialect);
            let statements = statements
                .iter()
                .map(|s| {
                    let tokens: Vec<Token<'_>> =
                        Lexer::new(s.sql, s.line, dialect).map_while(Result::ok).filter(Token::is_code).collect();
                    let last_line = s.line + s.sql.matches('\n').count();
                    StatementFacts { facts: facts::facts(&tokens), allow: comments.allowed_for(s.line, last_line) }
                })
                .collect();
            sections.push(SectionFacts { section, statements, comments });
        }
        let (mut new_tables, mut added_columns, mut created_views) = (HashMap::new(), HashSet::new(), HashSet::new());
        let mut new_schemas = HashMap::new();
        let add = sections.iter().find(|s| s.section.kind == SectionKind::Add);
        let add_facts = add.into_iter().flat_map(|s| s.statements.iter().enumerate());
        for (index, fact) in add_facts.flat_map(|(index, st)| st.facts.iter().map(move |f| (index, f))) {
            match fact {
                Fact::Create {
                    object: Object::Table, name: Some(name), replace: false, if_not_exists: false, ..
                } => {
                    new_tables.entry(name.clone()).or_insert(index);
                }
                Fact::Create { object: Object::Schema, name: Some(name), if_not_exists: false, .. } => {
                    new_schemas.entry(name.clone()).or_insert(index);
                }
                Fact::Create { object: Object::View | Object::MaterializedView, name: Some(name), .. } => {
                    created_views.insert(name.clone());
                }
                Fact::AddColumn { table, column, .. } => {
                    added_columns.insert((table.clone(), column.clone()));
                }
                _ => {}
            }
        }
        FileFacts { migration: m, sections, new_tables, new_schemas, added_columns, created_views }
    }

    fn section(&self, kind: SectionKind) -> Option<&SectionFacts<'m>> {
        self.sections.iter().find(|s| s.section.kind == kind)
    }
}

struct Sink<'p> {
    path: &'p std::path::Path,
    dialect: Dialect,
    findings: Vec<Finding>,
}

impl Sink<'_> {
    /// Records a finding unless the rule does not apply to the dialect or one
    /// of `allows` (marker and statement directives) silences it.
    fn emit(&mut self, rule: &Rule, allows: &[&[String]], line: usize, message: String, fix: String) {
        if !rule.applies_to(self.dialect) || allows.iter().any(|a| a.iter().any(|r| r == rule.id)) {
            return;
        }
        self.findings.push(Finding {
            path: self.path.to_path_buf(),
            line,
            rule: rule.id.to_string(),
            level: rule.level,
            message,
            fix,
        });
    }
}

fn statement_rules(
    sink: &mut Sink<'_>,
    file: &FileFacts<'_>,
    section: &SectionFacts<'_>,
    (index, st): (usize, &StatementFacts),
    fact: &Fact,
) {
    let kind = section.section.kind;
    let allows: &[&[String]] = &[&section.section.allow, &st.allow];
    let in_add = kind == SectionKind::Add;
    let in_simdrop = kind == SectionKind::Simdrop;
    let dialect = sink.dialect;
    // In `@add`, a table created by the same section, by this statement or
    // one before it, is not yet used by anyone, so changing it is harmless;
    // everywhere else tables are live.
    let existing = |table: &str| !(in_add && file.new_tables.get(table).is_some_and(|&created| created <= index));
    let mut emit = |rule: &Rule, line: usize, message: String, fix: &str| {
        sink.emit(rule, allows, line, message, fix.to_string());
    };
    match fact {
        Fact::Create { object: Object::Index, on, concurrently: false, line, .. }
            if on.as_deref().is_none_or(existing) =>
        {
            let table = on.as_deref().map(|t| format!(" `{t}`")).unwrap_or_default();
            emit(
                &INDEX_NOT_CONCURRENT,
                *line,
                format!("CREATE INDEX without CONCURRENTLY blocks writes to the existing table{table} until the index is built"),
                &format!("use CREATE INDEX CONCURRENTLY in a `-- @{kind} no-transaction` section"),
            );
        }
        Fact::Concurrently { what, line } if !section.section.no_transaction => emit(
            &CONCURRENTLY_IN_TRANSACTION,
            *line,
            format!("{what} cannot run inside a transaction, and `@{kind}` runs in one"),
            &format!(
                "mark the section `-- @{kind} no-transaction`, or, to keep the rest of `@{kind}` in its transaction, \
                 move the statement to a version of its own whose `@{kind}` is `no-transaction`"
            ),
        ),
        Fact::Drop { object, names, cascade, line } => {
            let what = format!("DROP {} `{}`", object.sql(), names.join("`, `"));
            // Dropping a view this section recreates is a replacement, unless
            // CASCADE takes the views built on it too (MySQL ignores the
            // word); a table this section creates has no users yet.
            let recreated = matches!(object, Object::View | Object::MaterializedView)
                && names.iter().all(|n| file.created_views.contains(n));
            let unused = *object == Object::Table && !names.iter().any(|n| existing(n));
            if in_add && recreated && *cascade && dialect == Dialect::Postgres {
                emit(
                    &DROP_IN_ADD,
                    *line,
                    format!("{what} … CASCADE in `@add` also drops every view built on it, which the running code may use"),
                    "replace it with CREATE OR REPLACE VIEW, or drop and recreate each dependent view in this section and allow it with `-- pygrate:allow drop-in-add`",
                );
            } else if let Some(fix) = drop_in_add_fix(*object).filter(|_| in_add && !recreated && !unused) {
                let message = format!("{what} in `@add`: the code still running during the rollout may use it");
                emit(&DROP_IN_ADD, *line, message, fix);
            }
            if in_simdrop && matches!(object, Object::Table | Object::Schema | Object::Database) {
                emit(
                    &DATA_LOSS_IN_SIMDROP,
                    *line,
                    format!("{what} in `@simdrop` destroys data that `@rollback_simdrop` cannot bring back"),
                    "rename it to a parking name in `-- @simdrop` and drop it in `-- @drop`",
                );
            }
        }
        Fact::DropColumn { table, column, line } if existing(table) => {
            if in_add {
                emit(
                    &DROP_IN_ADD,
                    *line,
                    format!("DROP COLUMN `{table}.{column}` in `@add`: the code still running during the rollout reads and writes it"),
                    "rename it to a parking name in `-- @simdrop` and drop it in `-- @drop`",
                );
            } else if in_simdrop {
                emit(
                    &DATA_LOSS_IN_SIMDROP,
                    *line,
                    format!("DROP COLUMN `{table}.{column}` in `@simdrop` destroys data that `@rollback_simdrop` cannot bring back"),
                    "rename it to a parking name in `-- @simdrop` and drop it in `-- @drop`",
                );
            }
        }
        Fact::DropPartition { table, line } if existing(table) => {
            if in_add {
                emit(
                    &DROP_IN_ADD,
                    *line,
                    format!("DROP PARTITION on `{table}` in `@add` deletes rows the running code uses"),
                    "move it to `-- @drop`",
                );
            } else if in_simdrop {
                emit(
                    &DATA_LOSS_IN_SIMDROP,
                    *line,
                    format!("DROP PARTITION on `{table}` in `@simdrop` deletes rows that `@rollback_simdrop` cannot bring back"),
                    "move it to `-- @drop`",
                );
            }
        }
        Fact::Truncate { tables, line } if tables.iter().any(|t| existing(t)) => {
            let tables = tables.join("`, `");
            if in_add {
                emit(
                    &UNBOUNDED_DML,
                    *line,
                    format!("TRUNCATE in `@add` empties `{tables}` while the running code uses it"),
                    "move it to `-- @drop`, or delete only the rows you mean with a WHERE clause",
                );
            } else if in_simdrop {
                emit(
                    &DATA_LOSS_IN_SIMDROP,
                    *line,
                    format!("TRUNCATE in `@simdrop` empties `{tables}`; `@rollback_simdrop` cannot bring the rows back"),
                    "move it to `-- @drop`",
                );
            }
        }
        Fact::Unbounded { verb, table, columns, line } if existing(table) => {
            // Filling columns this very section adds is the expand step's
            // backfill: nothing reads them yet.
            let backfill = *verb == "UPDATE"
                && !columns.is_empty()
                && columns.iter().all(|c| file.added_columns.contains(&(table.clone(), c.clone())));
            if in_add && !backfill {
                emit(
                    &UNBOUNDED_DML,
                    *line,
                    format!("{verb} without WHERE in `@add` changes every row of `{table}` while the running code uses them"),
                    "add a WHERE clause; if every row must really go, do it in `-- @drop`",
                );
            } else if in_simdrop {
                emit(
                    &DATA_LOSS_IN_SIMDROP,
                    *line,
                    format!("{verb} without WHERE in `@simdrop` changes every row of `{table}`; `@rollback_simdrop` cannot undo it"),
                    "add a WHERE clause, or move it to `-- @drop`",
                );
            }
        }
        Fact::AddColumn { table, column, not_null_without_default: Some(not_null), .. } if existing(table) => emit(
            &NOT_NULL_WITHOUT_DEFAULT,
            *not_null,
            format!("column `{table}.{column}` is added NOT NULL without a DEFAULT: existing rows have no value, and inserts from code that does not know it fail"),
            "give it a DEFAULT, or add it nullable, backfill it, and make it NOT NULL in a later version",
        ),
        Fact::IndexConstraint { table, kind: constraint, line } if existing(table) => emit(
            &INDEX_NOT_CONCURRENT,
            *line,
            format!("ADD {constraint} builds its index on the existing table `{table}` under an ACCESS EXCLUSIVE lock"),
            if *constraint == "EXCLUDE" {
                "an exclusion constraint cannot use an existing index: add it while the table is small, or accept the \
                 lock with `-- pygrate:allow index-not-concurrent`"
            } else {
                "build the index first with CREATE UNIQUE INDEX CONCURRENTLY in a `no-transaction` section, then \
                 ADD CONSTRAINT … USING INDEX it in a later section or version"
            },
        ),
        Fact::ValidatingConstraint { table, kind: constraint, line } if existing(table) => emit(
            &CONSTRAINT_NOT_VALID,
            *line,
            format!("{constraint} constraint added to `{table}` without NOT VALID: every row is checked under an ACCESS EXCLUSIVE lock"),
            "add it with NOT VALID, then VALIDATE CONSTRAINT in a later section or version (its own transaction)",
        ),
        Fact::RenameTable { table, line } if in_add && existing(table) => emit(
            &RENAME_IN_ADD,
            *line,
            format!("renaming `{table}` in `@add` breaks the code still running, which uses the old name"),
            "create the new name alongside in `-- @add` (a new table or a view), rename the old one away in `-- @simdrop`",
        ),
        Fact::RenameSchema { schema, line } if in_add && file.new_schemas.get(schema).is_none_or(|&c| c > index) => {
            emit(
                &RENAME_IN_ADD,
                *line,
                format!("renaming schema `{schema}` in `@add` breaks the code still running, which uses the old name for everything in it"),
                "create the new schema alongside in `-- @add` (views or copies of what the new code needs), rename the old one away in `-- @simdrop`",
            )
        }
        Fact::RenameColumn { table, column, line } if in_add && existing(table) => emit(
            &RENAME_IN_ADD,
            *line,
            format!("renaming column `{table}.{column}` in `@add` breaks the code still running, which uses the old name"),
            "add the new column and keep both in sync in `-- @add`, rename the old one away in `-- @simdrop`",
        ),
        Fact::TypeChange { table, column, how, line } if in_add && existing(table) => emit(
            &TYPE_CHANGE_IN_ADD,
            *line,
            format!("{how} changes the type of `{table}.{column}` in `@add`: it may rewrite the table and break the running code"),
            "add a column of the new type in `-- @add`, backfill it and keep it in sync; retire the old one in `-- @simdrop`",
        ),
        Fact::SetNotNull { table, column, line } if existing(table) => emit(
            &SET_NOT_NULL,
            *line,
            format!("SET NOT NULL on `{table}.{column}` scans the whole table under an ACCESS EXCLUSIVE lock"),
            &format!("first add `CHECK ({column} IS NOT NULL) NOT VALID` and VALIDATE it in another transaction; PostgreSQL 12+ then skips the scan"),
        ),
        Fact::NotOnline { table, line } if existing(table) => emit(
            &MYSQL_ONLINE_DDL,
            *line,
            format!("ALTER TABLE `{table}` without ALGORITHM=INSTANT or ALGORITHM=INPLACE, LOCK=NONE may copy the table and block writes"),
            "append `, ALGORITHM=INSTANT` (or `, ALGORITHM=INPLACE, LOCK=NONE`): MySQL then refuses rather than lock",
        ),
        _ => {}
    }
}

/// The fix for dropping `object` in `@add`; `None` for code objects
/// (triggers, functions, procedures, types), which hold no data and are
/// routinely dropped and recreated to replace them.
fn drop_in_add_fix(object: Object) -> Option<&'static str> {
    match object {
        Object::Table => Some("hide it in `-- @simdrop` (rename it to a parking name) and drop it in `-- @drop`"),
        Object::Index => Some("drop it in `-- @simdrop` (recreating it in `-- @rollback_simdrop`) or in `-- @drop`"),
        Object::View | Object::MaterializedView => {
            Some("drop it in `-- @simdrop` or `-- @drop`, or recreate it in this section to replace it")
        }
        Object::Sequence | Object::Schema | Object::Database => Some("move it to `-- @drop`"),
        Object::Trigger | Object::Function | Object::Procedure | Object::Type => None,
    }
}

/// `@add`/`@simdrop` with SQL but no rollback section, or an empty one.
fn missing_rollback(sink: &mut Sink<'_>, file: &FileFacts<'_>, forward: &SectionFacts<'_>) {
    let kind = forward.section.kind;
    let rollback = match kind {
        SectionKind::Add => SectionKind::RollbackAdd,
        SectionKind::Simdrop => SectionKind::RollbackSimdrop,
        _ => return,
    };
    if forward.statements.is_empty() {
        return;
    }
    let marker = &forward.section.allow;
    match (file.migration.section(rollback), file.section(rollback)) {
        (None, _) => sink.emit(
            &MISSING_ROLLBACK,
            &[marker],
            forward.section.marker_line,
            format!("`@{kind}` has no `@{rollback}` section: rolling it back will be refused"),
            format!("add a `-- @{rollback}` section that undoes it"),
        ),
        (Some(_), Some(r)) if r.statements.is_empty() => sink.emit(
            &MISSING_ROLLBACK,
            &[marker, &r.section.allow],
            r.section.marker_line,
            format!("`@{rollback}` is empty but `@{kind}` runs SQL: rolling it back would undo nothing"),
            format!(
                "write the statements that undo `@{kind}`, or put `-- pygrate:allow {}` on this marker if nothing needs undoing",
                MISSING_ROLLBACK.id
            ),
        ),
        // Present with SQL, or present but not lexing (the parser's to report).
        _ => {}
    }
}

/// What `@add` creates and `@rollback_add` leaves behind.
fn rollback_incomplete(sink: &mut Sink<'_>, file: &FileFacts<'_>, add: &SectionFacts<'_>) {
    let Some(rollback) = file.section(SectionKind::RollbackAdd).filter(|r| !r.statements.is_empty()) else {
        // Missing or empty: `missing-rollback` says so once.
        return;
    };
    let mut dropped: HashSet<(Object, &str)> = HashSet::new();
    let mut dropped_columns: HashSet<(&str, &str)> = HashSet::new();
    for fact in rollback.statements.iter().flat_map(|s| &s.facts) {
        match fact {
            Fact::Drop { object, names, .. } => {
                dropped.extend(names.iter().map(|n| (undo_kind(*object), unqualified(n))));
            }
            Fact::DropColumn { table, column, .. } => {
                dropped_columns.insert((unqualified(table), column));
            }
            _ => {}
        }
    }
    // A rollback may name an object with or without its schema; dropping
    // the schema drops what was created in it.
    let in_dropped_schema =
        |name: &str| name.rsplit_once('.').is_some_and(|(schema, _)| dropped.contains(&(Object::Schema, schema)));
    let is_dropped = |kind: Object, name: &str| dropped.contains(&(kind, unqualified(name))) || in_dropped_schema(name);
    let table_dropped = |t: &str| is_dropped(Object::Table, t);
    // A scratch object `@add` drops again after creating it needs no undoing.
    let mut dropped_by_add: Vec<(usize, Object, &str)> = Vec::new();
    for (i, st) in add.statements.iter().enumerate() {
        for fact in &st.facts {
            if let Fact::Drop { object, names, .. } = fact {
                dropped_by_add.extend(names.iter().map(|n| (i, undo_kind(*object), unqualified(n))));
            }
        }
    }
    for (i, st) in add.statements.iter().enumerate() {
        for fact in &st.facts {
            let (undone, what, line, fix) = match fact {
                Fact::Create { object, name: Some(name), on, replace: false, line, .. } => {
                    let kind = undo_kind(*object);
                    let undone = is_dropped(kind, name)
                        || on.as_deref().is_some_and(table_dropped)
                        || dropped_by_add.iter().any(|&(k, o, n)| k > i && o == kind && n == unqualified(name));
                    let sql = object.sql();
                    (
                        undone,
                        format!("{sql} `{name}`"),
                        *line,
                        format!("add `DROP {sql} {name};` to `-- @rollback_add`"),
                    )
                }
                Fact::AddColumn { table, column, line, .. } => (
                    dropped_columns.contains(&(unqualified(table), column.as_str())) || table_dropped(table),
                    format!("column `{table}.{column}`"),
                    *line,
                    format!("add `ALTER TABLE {table} DROP COLUMN {column};` to `-- @rollback_add`"),
                ),
                _ => continue,
            };
            if !undone {
                sink.emit(
                    &ROLLBACK_INCOMPLETE,
                    &[&add.section.allow, &rollback.section.allow, &st.allow],
                    line,
                    format!("`@add` creates {what} but `@rollback_add` does not drop it"),
                    fix,
                );
            }
        }
    }
}

/// The last part of a qualified name.
fn unqualified(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(_, last)| last)
}

/// Dropping a view undoes a materialized one too (PostgreSQL insists on the
/// right word, but the intent is clear).
fn undo_kind(object: Object) -> Object {
    match object {
        Object::MaterializedView => Object::View,
        other => other,
    }
}

/// A `pygrate:allow` naming no rule is itself a finding, at its line.
fn unknown_allows(sink: &mut Sink<'_>, section: &SectionFacts<'_>) {
    let marker = (section.section.marker_line, &section.section.allow);
    let comments = section.comments.directives.iter().map(|d| (d.first_line, &d.rules));
    for (line, rules) in std::iter::once(marker).chain(comments) {
        for rule in rules.iter().filter(|r| !RULES.iter().any(|known| known.id == r.as_str())) {
            let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
            let fix = match closest(rule, &ids) {
                Some(id) => format!("did you mean `{id}`?"),
                None => format!("rule ids are {}", ids.join(", ")),
            };
            sink.emit(
                &UNKNOWN_ALLOW,
                &[],
                line,
                format!("`pygrate:allow` names unknown rule `{rule}`, so it silences nothing"),
                fix,
            );
        }
    }
}

fn marker_lookalikes(sink: &mut Sink<'_>, section: &SectionFacts<'_>) {
    let own = section.section.kind;
    for (i, line) in section.section.body.lines().enumerate() {
        let Some((kind, why)) = crate::parser::marker_lookalike(line) else { continue };
        let line = section.section.body_line() + i;
        // Not text inside a literal or a block comment. (An invisible
        // character before the `--` is a word to the lexer.)
        let comment = match why {
            NotAMarker::Invisible => section.comments.holds_line_comment(line),
            _ => section.comments.is_line_comment(line),
        };
        if !comment {
            continue;
        }
        let why = why.describe();
        sink.emit(
            &INDENTED_MARKER,
            &[&section.section.allow, &section.comments.allowed_for(line, line)],
            line,
            format!("this `-- @{kind}` line {why}, so it is a comment: what follows runs as part of `@{own}`"),
            format!("write the line as `-- @{kind}`, nothing before it, or reword the comment"),
        );
    }
}

#[cfg(test)]
mod tests;
