//! What one statement does, read from its code tokens: the few SQL shapes the
//! rules care about. Anything else yields no fact, so unknown syntax can only
//! make the lint miss a problem, never invent one.
//!
//! Only the statement's head decides its shape, so the statements inside a
//! routine body (`CREATE TRIGGER … BEGIN … END`) are never read as their own.

use crate::lexer::{Token, TokenKind};

/// Object kinds that CREATE and DROP name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Object {
    Table,
    View,
    MaterializedView,
    Index,
    Trigger,
    Function,
    Procedure,
    Sequence,
    Type,
    Schema,
    Database,
}

impl Object {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Object::Table => "TABLE",
            Object::View => "VIEW",
            Object::MaterializedView => "MATERIALIZED VIEW",
            Object::Index => "INDEX",
            Object::Trigger => "TRIGGER",
            Object::Function => "FUNCTION",
            Object::Procedure => "PROCEDURE",
            Object::Sequence => "SEQUENCE",
            Object::Type => "TYPE",
            Object::Schema => "SCHEMA",
            Object::Database => "DATABASE",
        }
    }

    /// The kind named by the word at `tokens[i]`, and the index after it.
    fn at(tokens: &[Token<'_>], i: usize) -> Option<(Object, usize)> {
        let t = tokens.get(i)?;
        let kind = match t.text.to_ascii_uppercase().as_str() {
            _ if t.kind != TokenKind::Word => return None,
            "TABLE" => Object::Table,
            "VIEW" => Object::View,
            "MATERIALIZED" if word(tokens, i + 1, "VIEW") => {
                return Some((Object::MaterializedView, i + 2));
            }
            "INDEX" => Object::Index,
            "TRIGGER" => Object::Trigger,
            "FUNCTION" => Object::Function,
            "PROCEDURE" => Object::Procedure,
            "SEQUENCE" => Object::Sequence,
            "TYPE" => Object::Type,
            "SCHEMA" => Object::Schema,
            "DATABASE" => Object::Database,
            _ => return None,
        };
        Some((kind, i + 1))
    }
}

/// Something a statement does, with the line of the token that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fact {
    Create {
        object: Object,
        /// Normalised name (see [`ident`]); an index may have none.
        name: Option<String>,
        /// The table an index or trigger is on.
        on: Option<String>,
        /// `CREATE OR REPLACE`: the object may have existed before.
        replace: bool,
        /// `IF NOT EXISTS`: the object may exist already, and be in use.
        if_not_exists: bool,
        /// `CONCURRENTLY` (indexes).
        concurrently: bool,
        line: usize,
    },
    Drop {
        object: Object,
        names: Vec<String>,
        /// `CASCADE`: whatever depends on them goes too.
        cascade: bool,
        line: usize,
    },
    /// `TRUNCATE`: every row of these tables goes.
    Truncate {
        tables: Vec<String>,
        line: usize,
    },
    /// A DELETE or UPDATE with no top-level WHERE.
    Unbounded {
        verb: &'static str,
        table: String,
        /// Columns an UPDATE assigns (empty for DELETE).
        columns: Vec<String>,
        line: usize,
    },
    AddColumn {
        table: String,
        column: String,
        /// Line of `NOT NULL` when the column has no default or generated value.
        not_null_without_default: Option<usize>,
        line: usize,
    },
    DropColumn {
        table: String,
        column: String,
        line: usize,
    },
    DropPartition {
        table: String,
        line: usize,
    },
    /// `ADD [CONSTRAINT c] UNIQUE|PRIMARY KEY|EXCLUDE …` that builds its
    /// index (not `USING INDEX`).
    IndexConstraint {
        table: String,
        kind: &'static str,
        line: usize,
    },
    /// `ADD [CONSTRAINT c] FOREIGN KEY …`/`CHECK …` without `NOT VALID`.
    ValidatingConstraint {
        table: String,
        kind: &'static str,
        line: usize,
    },
    RenameTable {
        table: String,
        line: usize,
    },
    RenameColumn {
        table: String,
        column: String,
        line: usize,
    },
    /// PostgreSQL `ALTER SCHEMA s RENAME TO t`: every name in it moves.
    RenameSchema {
        schema: String,
        line: usize,
    },
    TypeChange {
        table: String,
        column: String,
        how: &'static str,
        line: usize,
    },
    SetNotNull {
        table: String,
        column: String,
        line: usize,
    },
    /// A `CONCURRENTLY` that PostgreSQL refuses inside a transaction block.
    Concurrently {
        what: &'static str,
        line: usize,
    },
    /// A MySQL ALTER TABLE lacking `ALGORITHM=INSTANT` or `ALGORITHM=INPLACE, LOCK=NONE`.
    NotOnline {
        table: String,
        line: usize,
    },
}

/// The facts of one statement, given its code tokens (no whitespace or comments).
pub(crate) fn facts(tokens: &[Token<'_>]) -> Vec<Fact> {
    let Some(first) = tokens.first() else {
        return Vec::new();
    };
    let upper = first.text.to_ascii_uppercase();
    match upper.as_str() {
        _ if first.kind != TokenKind::Word => Vec::new(),
        "CREATE" => create(tokens),
        "DROP" => drop(tokens),
        "ALTER" => alter(tokens),
        "TRUNCATE" => truncate(tokens).into_iter().collect(),
        "DELETE" | "UPDATE" => dml(tokens).into_iter().collect(),
        "RENAME" => rename_tables(tokens),
        "REINDEX" => top_level(tokens)
            .find(|t| t.is_word("CONCURRENTLY"))
            .map(|t| Fact::Concurrently { what: "REINDEX … CONCURRENTLY", line: t.line })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn create(tokens: &[Token<'_>]) -> Vec<Fact> {
    let Some(fact) = create_object(tokens) else {
        return Vec::new();
    };
    let concurrently = match fact {
        Fact::Create { concurrently: true, .. } => tokens.iter().find(|t| t.is_word("CONCURRENTLY")).map(|t| t.line),
        _ => None,
    };
    let mut out = vec![fact];
    out.extend(concurrently.map(|line| Fact::Concurrently { what: "CREATE INDEX CONCURRENTLY", line }));
    out
}

fn create_object(tokens: &[Token<'_>]) -> Option<Fact> {
    let line = tokens.first()?.line;
    // The object kind comes before any `(` or `AS`; words before it are
    // modifiers (`OR REPLACE`, `UNIQUE`, `TEMP`, MySQL `DEFINER = …`).
    let mut i = 1;
    let (object, mut i) = loop {
        let t = tokens.get(i)?;
        if t.is_punct('(') || t.is_word("AS") {
            return None;
        }
        if let Some(found) = Object::at(tokens, i) {
            break found;
        }
        i += 1;
    };
    let replace = tokens[..i].iter().any(|t| t.is_word("REPLACE"));
    let concurrently = word(tokens, i, "CONCURRENTLY");
    i += usize::from(concurrently);
    let after_if_not_exists = skip_words(tokens, i, &["IF", "NOT", "EXISTS"]);
    let if_not_exists = after_if_not_exists != i;
    i = after_if_not_exists;
    let name = if word(tokens, i, "ON") { None } else { name_at(tokens, i).map(|(n, _)| n) };
    let on = match object {
        Object::Index | Object::Trigger => {
            let on = top_level(tokens.get(i..)?).position(|t| t.is_word("ON"));
            on.and_then(|p| table_at(tokens.get(i..)?, p + 1)).map(|(n, _)| n)
        }
        _ => None,
    };
    Some(Fact::Create { object, name, on, replace, if_not_exists, concurrently, line })
}

fn drop(tokens: &[Token<'_>]) -> Vec<Fact> {
    let Some(line) = tokens.first().map(|t| t.line) else {
        return Vec::new();
    };
    // MySQL `DROP TEMPORARY TABLE`.
    let at = 1 + usize::from(word(tokens, 1, "TEMPORARY"));
    let Some((object, mut i)) = Object::at(tokens, at) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(t) = tokens.get(i).filter(|t| t.is_word("CONCURRENTLY")) {
        out.push(Fact::Concurrently { what: "DROP INDEX CONCURRENTLY", line: t.line });
        i += 1;
    }
    i = skip_words(tokens, i, &["IF", "EXISTS"]);
    let mut names = Vec::new();
    while let Some((name, next)) = name_at(tokens, i) {
        names.push(name);
        // `DROP FUNCTION f(int), g(text)`.
        i = skip_group(tokens, next);
        if !tokens.get(i).is_some_and(|t| t.is_punct(',')) {
            break;
        }
        i += 1;
    }
    let cascade = tokens.get(i).is_some_and(|t| t.is_word("CASCADE"));
    out.push(Fact::Drop { object, names, cascade, line });
    out
}

fn truncate(tokens: &[Token<'_>]) -> Option<Fact> {
    let line = tokens.first()?.line;
    let mut i = 1 + usize::from(word(tokens, 1, "TABLE"));
    let mut tables = Vec::new();
    while let Some((name, next)) = table_at(tokens, i) {
        tables.push(name);
        i = next + usize::from(tokens.get(next).is_some_and(|t| t.is_punct('*')));
        if !tokens.get(i).is_some_and(|t| t.is_punct(',')) {
            break;
        }
        i += 1;
    }
    Some(Fact::Truncate { tables, line })
}

/// DELETE or UPDATE without a top-level WHERE (a WHERE in a subquery does not bound it).
fn dml(tokens: &[Token<'_>]) -> Option<Fact> {
    let first = tokens.first()?;
    if top_level(tokens).any(|t| t.is_word("WHERE")) {
        return None;
    }
    let (verb, table, columns) = if first.is_word("DELETE") {
        let from = top_level(tokens).position(|t| t.is_word("FROM"))?;
        ("DELETE", table_at(tokens, from + 1)?.0, Vec::new())
    } else {
        // UPDATE [ONLY | LOW_PRIORITY | IGNORE | OR <action>] table …
        let mut i = 1;
        while let Some(t) = tokens.get(i) {
            if t.is_any_word(&["ONLY", "LOW_PRIORITY", "IGNORE"]) {
                i += 1;
            } else if t.is_word("OR") {
                i += 2;
            } else {
                break;
            }
        }
        let table = name_at(tokens, i)?.0;
        ("UPDATE", table, assigned_columns(tokens))
    };
    Some(Fact::Unbounded { verb, table, columns, line: first.line })
}

/// The columns `SET a = …, (b, c) = …` assigns, qualifiers dropped.
fn assigned_columns(tokens: &[Token<'_>]) -> Vec<String> {
    let Some(set) = top_level(tokens).position(|t| t.is_word("SET")) else {
        return Vec::new();
    };
    let rest = tokens.get(set + 1..).unwrap_or_default();
    let end = top_level(rest)
        .position(|t| t.is_any_word(&["FROM", "WHERE", "RETURNING", "ORDER", "LIMIT"]))
        .unwrap_or(rest.len());
    let mut columns = Vec::new();
    for assignment in split_top(rest.get(..end).unwrap_or_default()) {
        let target = assignment.iter().position(|t| t.is_punct('=')).unwrap_or(assignment.len());
        let target = assignment.get(..target).unwrap_or_default();
        for (k, t) in target.iter().enumerate() {
            let qualifier = target.get(k + 1).is_some_and(|n| n.is_punct('.'));
            if !qualifier {
                columns.extend(ident(t));
            }
        }
    }
    columns
}

/// MySQL `RENAME TABLE a TO b, c TO d`.
fn rename_tables(tokens: &[Token<'_>]) -> Vec<Fact> {
    if !tokens.get(1).is_some_and(|t| t.is_any_word(&["TABLE", "TABLES"])) {
        return Vec::new();
    }
    split_top(tokens.get(2..).unwrap_or_default())
        .filter_map(|pair| {
            let (table, _) = name_at(pair, 0)?;
            Some(Fact::RenameTable { table, line: pair.first()?.line })
        })
        .collect()
}

fn alter(tokens: &[Token<'_>]) -> Vec<Fact> {
    match Object::at(tokens, 1) {
        Some((Object::Table, i)) => alter_table(tokens, i),
        Some((Object::View | Object::MaterializedView, i)) => {
            let renamed = top_level(tokens).find(|t| t.is_word("RENAME"));
            let view = name_at(tokens, skip_words(tokens, i, &["IF", "EXISTS"]));
            match (renamed, view) {
                (Some(r), Some((table, _))) if top_level(tokens).any(|t| t.is_word("TO")) => {
                    vec![Fact::RenameTable { table, line: r.line }]
                }
                _ => Vec::new(),
            }
        }
        Some((Object::Schema, i)) => match (top_level(tokens).find(|t| t.is_word("RENAME")), name_at(tokens, i)) {
            (Some(r), Some((schema, _))) => vec![Fact::RenameSchema { schema, line: r.line }],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn alter_table(tokens: &[Token<'_>], i: usize) -> Vec<Fact> {
    let i = skip_words(tokens, i, &["IF", "EXISTS"]);
    let Some((table, i)) = table_at(tokens, i) else {
        return Vec::new();
    };
    let i = i + usize::from(tokens.get(i).is_some_and(|t| t.is_punct('*')));
    let mut out = Vec::new();
    let (mut algorithm, mut lock) = (None, None);
    for action in split_top(tokens.get(i..).unwrap_or_default()) {
        let Some(head) = action.first() else { continue };
        let verb = head.text.to_ascii_uppercase();
        match verb.as_str() {
            "ALGORITHM" => algorithm = option_value(action),
            "LOCK" => lock = option_value(action),
            _ => out.extend(alter_action(&table, action)),
        }
    }
    // INSTANT changes metadata only (MySQL refuses a LOCK clause with it);
    // INPLACE/NOCOPY are online only with LOCK=NONE.
    let online = match algorithm.as_deref() {
        Some("INSTANT") => true,
        Some("INPLACE" | "NOCOPY") => lock.as_deref() == Some("NONE"),
        _ => false,
    };
    if !online {
        if let Some(line) = tokens.first().map(|t| t.line) {
            out.push(Fact::NotOnline { table, line });
        }
    }
    out
}

/// `ALGORITHM [=] X` → `X`, uppercased.
fn option_value(action: &[Token<'_>]) -> Option<String> {
    action.iter().skip(1).find(|t| t.kind == TokenKind::Word).map(|t| t.text.to_ascii_uppercase())
}

/// One comma-separated action of an ALTER TABLE.
fn alter_action(table: &str, action: &[Token<'_>]) -> Vec<Fact> {
    let Some(head) = action.first() else {
        return Vec::new();
    };
    let table = table.to_string();
    let line = head.line;
    let verb = head.text.to_ascii_uppercase();
    let fact = match verb.as_str() {
        "ADD" => return add_action(table, action),
        "DROP" => {
            let after = action.get(1);
            if after.is_some_and(|t| t.is_any_word(&["INDEX", "KEY"])) {
                name_at(action, 2).map(|(name, _)| Fact::Drop {
                    object: Object::Index,
                    names: vec![name],
                    cascade: false,
                    line,
                })
            } else if after.is_some_and(|t| t.is_word("PARTITION")) {
                Some(Fact::DropPartition { table, line })
            } else if after.is_some_and(|t| {
                t.is_any_word(&["CONSTRAINT", "CHECK", "FOREIGN", "PRIMARY", "SYSTEM", "PERIOD", "DEFAULT"])
            }) {
                None
            } else {
                let i = 1 + usize::from(word(action, 1, "COLUMN"));
                let i = skip_words(action, i, &["IF", "EXISTS"]);
                name_at(action, i).map(|(column, _)| Fact::DropColumn { table, column, line })
            }
        }
        "RENAME" => {
            let after = action.get(1);
            if after.is_some_and(|t| t.is_any_word(&["TO", "AS"])) {
                Some(Fact::RenameTable { table, line })
            } else if after.is_some_and(|t| t.is_any_word(&["CONSTRAINT", "INDEX", "KEY"])) {
                None
            } else {
                let i = 1 + usize::from(word(action, 1, "COLUMN"));
                match name_at(action, i) {
                    Some((column, next)) if word(action, next, "TO") => {
                        Some(Fact::RenameColumn { table, column, line })
                    }
                    // MySQL `RENAME new_name`.
                    Some(_) => Some(Fact::RenameTable { table, line }),
                    None => None,
                }
            }
        }
        "ALTER" => {
            let i = 1 + usize::from(word(action, 1, "COLUMN"));
            if action.get(i).is_some_and(|t| t.is_any_word(&["CONSTRAINT", "INDEX", "CHECK"])) {
                return Vec::new();
            }
            let Some((column, i)) = name_at(action, i) else {
                return Vec::new();
            };
            let at = |k: usize| action.get(i + k);
            if word(action, i, "TYPE") || (word(action, i, "SET") && at(1).is_some_and(|t| t.is_word("DATA"))) {
                Some(Fact::TypeChange { table, column, how: "ALTER COLUMN … TYPE", line })
            } else if word(action, i, "SET")
                && at(1).is_some_and(|t| t.is_word("NOT"))
                && at(2).is_some_and(|t| t.is_word("NULL"))
            {
                Some(Fact::SetNotNull { table, column, line })
            } else {
                None
            }
        }
        "MODIFY" => {
            let i = 1 + usize::from(word(action, 1, "COLUMN"));
            name_at(action, i).map(|(column, _)| Fact::TypeChange { table, column, how: "MODIFY", line })
        }
        "CHANGE" => {
            let i = 1 + usize::from(word(action, 1, "COLUMN"));
            let (old, i) = match name_at(action, i) {
                Some(found) => found,
                None => return Vec::new(),
            };
            match name_at(action, i) {
                Some((new, _)) if new != old => Some(Fact::RenameColumn { table, column: old, line }),
                _ => Some(Fact::TypeChange { table, column: old, how: "CHANGE", line }),
            }
        }
        // PostgreSQL `SET SCHEMA s` moves the table from under the running
        // code's name as a rename does.
        "SET" if word(action, 1, "SCHEMA") => Some(Fact::RenameTable { table, line }),
        "DETACH" => top_level(action)
            .find(|t| t.is_word("CONCURRENTLY"))
            .map(|t| Fact::Concurrently { what: "DETACH PARTITION … CONCURRENTLY", line: t.line }),
        _ => None,
    };
    fact.into_iter().collect()
}

/// `ADD [COLUMN] [IF NOT EXISTS] c …` or `ADD [CONSTRAINT c] FOREIGN KEY|CHECK …`.
fn add_action(table: String, action: &[Token<'_>]) -> Vec<Fact> {
    add_facts(table, action).unwrap_or_default()
}

fn add_facts(table: String, action: &[Token<'_>]) -> Option<Vec<Fact>> {
    let line = action.first()?.line;
    let mut i = 1;
    if word(action, i, "CONSTRAINT") {
        // `ADD CONSTRAINT name <constraint>`.
        i += 2;
    } else if word(action, i, "COLUMN") {
        i += 1;
    }
    let next = action.get(i)?;
    if next.is_any_word(&["FOREIGN", "CHECK"]) {
        let not_valid =
            top_level(action).zip(top_level(action).skip(1)).any(|(a, b)| a.is_word("NOT") && b.is_word("VALID"));
        let kind = if next.is_word("CHECK") { "CHECK" } else { "FOREIGN KEY" };
        return Some(
            (!not_valid).then_some(Fact::ValidatingConstraint { table, kind, line: next.line }).into_iter().collect(),
        );
    }
    if next.is_any_word(&["UNIQUE", "PRIMARY", "EXCLUDE"]) {
        let using_index =
            top_level(action).zip(top_level(action).skip(1)).any(|(a, b)| a.is_word("USING") && b.is_word("INDEX"));
        let kind = match next.text.to_ascii_uppercase().as_str() {
            "UNIQUE" => "UNIQUE",
            "PRIMARY" => "PRIMARY KEY",
            _ => "EXCLUDE",
        };
        return Some(
            (!using_index).then_some(Fact::IndexConstraint { table, kind, line: next.line }).into_iter().collect(),
        );
    }
    // MySQL's `ADD [COLUMN] (c1 …, c2 …)`: each column as if added alone.
    if next.is_punct('(') && !word(action, 1, "CONSTRAINT") {
        let inner = action.get(i + 1..skip_group(action, i).saturating_sub(1)).unwrap_or_default();
        let columns = split_top(inner).filter_map(|column| column_facts(&table, column, column.first()?.line));
        return Some(columns.flatten().collect());
    }
    if next.is_punct('(')
        || word(action, 1, "CONSTRAINT")
        || next.is_any_word(&[
            "UNIQUE",
            "PRIMARY",
            "INDEX",
            "KEY",
            "FULLTEXT",
            "SPATIAL",
            "PARTITION",
            "EXCLUDE",
            "PERIOD",
            "SYSTEM",
        ])
    {
        return None;
    }
    let i = skip_words(action, i, &["IF", "NOT", "EXISTS"]);
    column_facts(&table, action.get(i..)?, line)
}

/// A column definition (`c int NOT NULL …`) added to `table`.
fn column_facts(table: &str, tokens: &[Token<'_>], line: usize) -> Option<Vec<Fact>> {
    let (column, i) = name_at(tokens, 0)?;
    let definition = tokens.get(i..).unwrap_or_default();
    let has_value = gives_a_value(definition);
    let not_null = top_level(definition)
        .zip(top_level(definition).skip(1))
        .find(|(a, b)| a.is_word("NOT") && b.is_word("NULL"))
        .map(|(a, _)| a.line);
    // A column's own UNIQUE or PRIMARY KEY builds an index over the whole
    // table, as `ADD CONSTRAINT … UNIQUE` does.
    let table = table.to_string();
    let index = top_level(definition).find(|t| t.is_any_word(&["UNIQUE", "PRIMARY"])).map(|t| Fact::IndexConstraint {
        table: table.clone(),
        kind: if t.is_word("UNIQUE") { "UNIQUE" } else { "PRIMARY KEY" },
        line: t.line,
    });
    let column = Fact::AddColumn { table, column, not_null_without_default: not_null.filter(|_| !has_value), line };
    Some(std::iter::once(column).chain(index).collect())
}

/// Whether a column definition gives existing rows a value: a `DEFAULT`
/// other than `DEFAULT NULL` or `DEFAULT (NULL)` (no value for a `NOT NULL`
/// column), or a generated, identity, serial or auto-increment value.
fn gives_a_value(definition: &[Token<'_>]) -> bool {
    top_level_indexed(definition).any(|(k, t)| {
        // A foreign key's `ON DELETE SET DEFAULT` is an action, not a value.
        let after_set = k.checked_sub(1).and_then(|before| definition.get(before)).is_some_and(|b| b.is_word("SET"));
        if t.is_word("DEFAULT") && after_set {
            return false;
        }
        if t.is_word("DEFAULT") {
            let value = definition.get(k + 1..).unwrap_or_default().iter().find(|v| !v.is_punct('('));
            return !value.is_some_and(|v| v.is_word("NULL"));
        }
        t.is_any_word(&[
            "GENERATED",
            "AS",
            "IDENTITY",
            "AUTO_INCREMENT",
            "AUTOINCREMENT",
            "SERIAL",
            "SMALLSERIAL",
            "BIGSERIAL",
            "SERIAL2",
            "SERIAL4",
            "SERIAL8",
        ])
    })
}

/// The tokens outside any parentheses.
fn top_level<'t, 'a>(tokens: &'t [Token<'a>]) -> impl Iterator<Item = &'t Token<'a>> + Clone {
    top_level_indexed(tokens).map(|(_, t)| t)
}

/// The tokens outside any parentheses, with their index in `tokens`.
fn top_level_indexed<'t, 'a>(tokens: &'t [Token<'a>]) -> impl Iterator<Item = (usize, &'t Token<'a>)> + Clone {
    let mut depth = 0usize;
    tokens.iter().enumerate().filter(move |(_, t)| {
        if t.is_punct('(') {
            depth += 1;
            false
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
            false
        } else {
            depth == 0
        }
    })
}

/// Splits at commas outside parentheses.
fn split_top<'t, 'a>(tokens: &'t [Token<'a>]) -> impl Iterator<Item = &'t [Token<'a>]> {
    let mut depth = 0usize;
    tokens.split(move |t| {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
        }
        depth == 0 && t.is_punct(',')
    })
}

/// Past a parenthesised group at `i`, if there is one.
fn skip_group(tokens: &[Token<'_>], i: usize) -> usize {
    if !tokens.get(i).is_some_and(|t| t.is_punct('(')) {
        return i;
    }
    let mut depth = 0usize;
    for (k, t) in tokens.iter().enumerate().skip(i) {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return k + 1;
            }
        }
    }
    tokens.len()
}

fn word(tokens: &[Token<'_>], i: usize, keyword: &str) -> bool {
    tokens.get(i).is_some_and(|t| t.is_word(keyword))
}

/// Past `words` when they all follow at `i`, else `i`.
fn skip_words(tokens: &[Token<'_>], i: usize, words: &[&str]) -> usize {
    let all = words.iter().enumerate().all(|(k, w)| word(tokens, i + k, w));
    if all {
        i + words.len()
    } else {
        i
    }
}

/// A table name at `i`, after an optional `ONLY`.
fn table_at(tokens: &[Token<'_>], i: usize) -> Option<(String, usize)> {
    name_at(tokens, i + usize::from(word(tokens, i, "ONLY")))
}

/// A possibly qualified name at `i` (`s.t`, `"s"."t"`), normalised part by
/// part and kept qualified: `archive.users` is not `public.users`, and a
/// table created as one must not vouch for the other. Unqualified and
/// qualified spellings of one table differ too, which errs on the side of
/// a finding.
fn name_at(tokens: &[Token<'_>], i: usize) -> Option<(String, usize)> {
    let mut name = ident(tokens.get(i)?)?;
    let mut i = i + 1;
    while tokens.get(i).is_some_and(|t| t.is_punct('.')) {
        match tokens.get(i + 1).and_then(ident) {
            Some(part) => {
                name.push('.');
                name.push_str(&part);
                i += 2;
            }
            None => break,
        }
    }
    Some((name, i))
}

/// An identifier, unquoted and lowercased: rules compare names the way a
/// reader would, ignoring case and quoting.
pub(crate) fn ident(token: &Token<'_>) -> Option<String> {
    match token.kind {
        TokenKind::Word => Some(token.text.to_lowercase()),
        TokenKind::QuotedIdent => {
            let quote = token.text.get(..1)?;
            let inner = token.text.get(1..token.text.len().checked_sub(1)?)?;
            Some(inner.replace(&quote.repeat(2), quote).to_lowercase())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::Dialect;
    use crate::lexer::Lexer;

    fn of(sql: &str, dialect: Dialect) -> Vec<Fact> {
        let tokens: Vec<Token<'_>> = Lexer::new(sql, 1, dialect).flatten().filter(Token::is_code).collect();
        facts(&tokens)
    }

    fn pg(sql: &str) -> Vec<Fact> {
        of(sql, Dialect::Postgres)
    }

    #[test]
    fn create_index_names_its_table_and_concurrently() {
        assert_eq!(
            pg("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS \"Idx\" ON ONLY app.users USING btree (lower(email))"),
            [
                Fact::Create {
                    object: Object::Index,
                    name: Some("idx".into()),
                    on: Some("app.users".into()),
                    replace: false,
                    if_not_exists: true,
                    concurrently: true,
                    line: 1
                },
                Fact::Concurrently { what: "CREATE INDEX CONCURRENTLY", line: 1 }
            ]
        );
        assert_eq!(
            pg("create index on t (a)"),
            [Fact::Create {
                object: Object::Index,
                name: None,
                on: Some("t".into()),
                replace: false,
                if_not_exists: false,
                concurrently: false,
                line: 1
            }]
        );
    }

    #[test]
    fn create_kinds_skip_modifiers_and_stop_at_the_body() {
        let kind = |sql: &str| match of(sql, Dialect::Mysql).first() {
            Some(Fact::Create { object, name, replace, .. }) => Some((*object, name.clone(), *replace)),
            _ => None,
        };
        assert_eq!(
            kind("CREATE DEFINER = 'me'@'%' TRIGGER tr BEFORE INSERT ON t"),
            Some((Object::Trigger, Some("tr".into()), false))
        );
        assert_eq!(
            kind("CREATE OR REPLACE ALGORITHM=MERGE VIEW `v` AS SELECT 1"),
            Some((Object::View, Some("v".into()), true))
        );
        assert_eq!(
            kind("CREATE TEMPORARY TABLE IF NOT EXISTS s.t (a int)"),
            Some((Object::Table, Some("s.t".into()), false))
        );
        assert_eq!(kind("CREATE USER x"), None);
    }

    #[test]
    fn drop_lists_names() {
        assert_eq!(
            pg("DROP FUNCTION IF EXISTS f(int), s.g(text, int) CASCADE"),
            [Fact::Drop { object: Object::Function, names: vec!["f".into(), "s.g".into()], cascade: true, line: 1 }]
        );
        assert_eq!(
            pg("DROP INDEX CONCURRENTLY i"),
            [
                Fact::Concurrently { what: "DROP INDEX CONCURRENTLY", line: 1 },
                Fact::Drop { object: Object::Index, names: vec!["i".into()], cascade: false, line: 1 }
            ]
        );
        assert_eq!(pg("DROP POLICY p ON t"), []);
    }

    #[test]
    fn dml_bounded_only_by_a_top_level_where() {
        assert_eq!(pg("DELETE FROM t WHERE a = 1"), []);
        assert_eq!(
            pg("DELETE FROM ONLY s.t USING u"),
            [Fact::Unbounded { verb: "DELETE", table: "s.t".into(), columns: vec![], line: 1 }]
        );
        assert_eq!(
            pg("UPDATE t SET a = (SELECT b FROM u WHERE u.id = t.id), t.c = 1, (d, \"E\") = (1, 2)"),
            [Fact::Unbounded {
                verb: "UPDATE",
                table: "t".into(),
                columns: vec!["a".into(), "c".into(), "d".into(), "e".into()],
                line: 1
            }]
        );
        assert_eq!(
            of("UPDATE OR REPLACE t SET a = 1", Dialect::Sqlite),
            [Fact::Unbounded { verb: "UPDATE", table: "t".into(), columns: vec!["a".into()], line: 1 }]
        );
    }

    #[test]
    fn alter_table_actions() {
        let facts = pg("ALTER TABLE IF EXISTS ONLY t\n ADD COLUMN a int NOT NULL,\n ADD b int NOT NULL DEFAULT 0,\n DROP COLUMN c,\n DROP CONSTRAINT k,\n ALTER d TYPE bigint,\n ALTER COLUMN e SET NOT NULL,\n ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES u (id),\n ADD CHECK (x > 0) NOT VALID,\n RENAME g TO h");
        assert_eq!(
            facts,
            [
                Fact::AddColumn { table: "t".into(), column: "a".into(), not_null_without_default: Some(2), line: 2 },
                Fact::AddColumn { table: "t".into(), column: "b".into(), not_null_without_default: None, line: 3 },
                Fact::DropColumn { table: "t".into(), column: "c".into(), line: 4 },
                Fact::TypeChange { table: "t".into(), column: "d".into(), how: "ALTER COLUMN … TYPE", line: 6 },
                Fact::SetNotNull { table: "t".into(), column: "e".into(), line: 7 },
                Fact::ValidatingConstraint { table: "t".into(), kind: "FOREIGN KEY", line: 8 },
                Fact::RenameColumn { table: "t".into(), column: "g".into(), line: 10 },
                Fact::NotOnline { table: "t".into(), line: 1 },
            ]
        );
    }

    #[test]
    fn mysql_alter_forms_and_online_options() {
        let facts = |sql| of(sql, Dialect::Mysql);
        assert_eq!(
            facts("ALTER TABLE t CHANGE COLUMN a b int, MODIFY c bigint, DROP INDEX i, RENAME TO u, ALGORITHM=INPLACE, LOCK=NONE"),
            [
                Fact::RenameColumn { table: "t".into(), column: "a".into(), line: 1 },
                Fact::TypeChange { table: "t".into(), column: "c".into(), how: "MODIFY", line: 1 },
                Fact::Drop { object: Object::Index, names: vec!["i".into()], cascade: false, line: 1 },
                Fact::RenameTable { table: "t".into(), line: 1 },
            ]
        );
        assert_eq!(
            facts("ALTER TABLE t ADD COLUMN a int, ALGORITHM = INSTANT"),
            [Fact::AddColumn { table: "t".into(), column: "a".into(), not_null_without_default: None, line: 1 }]
        );
        assert_eq!(
            facts("ALTER TABLE t ALGORITHM=INPLACE, ADD INDEX i (a)"),
            [Fact::NotOnline { table: "t".into(), line: 1 }]
        );
        assert_eq!(
            facts("RENAME TABLE a TO b, c TO d"),
            [Fact::RenameTable { table: "a".into(), line: 1 }, Fact::RenameTable { table: "c".into(), line: 1 }]
        );
    }

    #[test]
    fn generated_and_serial_columns_have_values() {
        for def in [
            "bigserial NOT NULL",
            "int NOT NULL GENERATED ALWAYS AS IDENTITY",
            "int AS (a + 1) NOT NULL",
            "int NOT NULL AUTO_INCREMENT",
        ] {
            let sql = format!("ALTER TABLE t ADD COLUMN c {def}");
            assert!(matches!(pg(&sql).first(), Some(Fact::AddColumn { not_null_without_default: None, .. })), "{sql}");
        }
        // A NOT NULL inside a CHECK is not the column's.
        assert!(matches!(
            pg("ALTER TABLE t ADD COLUMN c int CHECK (c IS NOT NULL)").first(),
            Some(Fact::AddColumn { not_null_without_default: None, .. })
        ));
    }

    #[test]
    fn quoted_identifiers_unquote() {
        let t = |sql: &str, d| Lexer::new(sql, 1, d).flatten().next().and_then(|t| ident(&t));
        assert_eq!(t("\"a\"\"B\"", Dialect::Postgres), Some("a\"b".into()));
        assert_eq!(t("`x``y`", Dialect::Mysql), Some("x`y".into()));
        assert_eq!(t("'s'", Dialect::Postgres), None);
    }
}
