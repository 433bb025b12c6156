use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::parser::parse;
use crate::project::{Project, VersionId};

fn migration(text: &str) -> Migration {
    match parse(VersionId::new("r", "v"), Path::new("r/v.sql"), text.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{e:?}"),
    }
}

/// (line, rule) of every finding.
fn found(text: &str, dialect: Dialect) -> Vec<(usize, String)> {
    lint_migration(&migration(text), dialect).into_iter().map(|f| (f.line, f.rule)).collect()
}

fn pairs(expected: &[(usize, &str)]) -> Vec<(usize, String)> {
    expected.iter().map(|(l, r)| (*l, r.to_string())).collect()
}

const DIALECTS: [Dialect; 3] = [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql];

#[test]
fn rule_ids_are_unique_kebab_case_and_documented() {
    let docs = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/lint-rules.md")).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for rule in RULES {
        assert!(seen.insert(rule.id), "{} twice", rule.id);
        assert!(rule.id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{}", rule.id);
        assert!(docs.contains(&format!("| `{}` |", rule.id)), "{} missing from docs/lint-rules.md", rule.id);
    }
}

/// `fixtures/lint/RULE/*.sql`: see `fixtures/lint/README.md`.
#[test]
fn fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lint");
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(&root).map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()).unwrap_or_default();
    dirs.sort();
    let names: BTreeSet<String> =
        dirs.iter().filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_string)).collect();
    let ids: BTreeSet<String> = RULES.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(names, ids, "one fixture directory per rule");
    let mut checked = 0;
    for dir in &dirs {
        let rule = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "sql")).collect())
            .unwrap_or_default();
        files.sort();
        assert!(!files.is_empty(), "{} has no fixture", dir.display());
        for file in files {
            check_fixture(&file, rule);
            checked += 1;
        }
    }
    assert!(checked >= RULES.len());
}

fn check_fixture(file: &Path, rule: &str) {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let dialects: Vec<Dialect> = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("-- dialects:"))
        .map(|l| l.split(',').map(|d| Dialect::from_name(d.trim()).unwrap_or_else(|| panic!("dialect {d}"))).collect())
        .unwrap_or_else(|| panic!("{}: first line must be `-- dialects: …`", file.display()));
    assert!(!dialects.is_empty());
    let mut expected = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(rules) = line.trim_start().strip_prefix("-- expect:") {
            // The finding is on the next line (lines count from 1).
            expected.extend(rules.split(',').map(|r| (index + 2, r.trim().to_string())));
        }
    }
    assert!(expected.iter().any(|(_, r)| r == rule), "{}: expects no `{rule}`", file.display());
    let m = match parse(VersionId::new("lint", rule), file, text.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{}: {e:?}", file.display()),
    };
    for dialect in dialects {
        let findings = lint_migration(&m, dialect);
        for f in &findings {
            assert_eq!(f.path, file);
        }
        let got: BTreeSet<(usize, String)> = findings.into_iter().map(|f| (f.line, f.rule)).collect();
        assert_eq!(got, expected, "{} in {dialect}", file.display());
    }
}

#[test]
fn the_sample_project_lints_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = Project::discover(root).unwrap_or_else(|e| panic!("{e}"));
    assert!(project.files.len() >= 4, "{:?}", project.files);
    for file in &project.files {
        let bytes = fs::read(&file.path).unwrap_or_else(|e| panic!("{}: {e}", file.path.display()));
        let m = parse(file.id.clone(), &file.path, &bytes).unwrap_or_else(|e| panic!("{e:?}"));
        let findings = lint_migration(&m, Dialect::Sqlite);
        assert!(findings.is_empty(), "{}", findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
    }
}

#[test]
fn text_in_literals_comments_and_quoted_identifiers_is_not_code() {
    let text = "-- @add
INSERT INTO log (sql) VALUES ('DROP TABLE users; DELETE FROM users; TRUNCATE users');
-- DROP TABLE users; DELETE FROM users;
/* ALTER TABLE users DROP COLUMN a;
   UPDATE users SET a = 1; */
SELECT 1 AS \"DROP TABLE users\", 2 AS `DELETE FROM users`;
INSERT INTO log (sql) VALUES (
  'ALTER TABLE users RENAME COLUMN a TO b; ALTER TABLE users ADD COLUMN c int NOT NULL'
);
-- @rollback_add
DELETE FROM log;
";
    for dialect in DIALECTS {
        assert_eq!(found(text, dialect), [], "{dialect}");
    }
}

#[test]
fn dollar_quoted_and_routine_bodies_are_not_statements() {
    let pg = "-- @add
DO $$ BEGIN DROP TABLE users; DELETE FROM users; END $$;
CREATE OR REPLACE FUNCTION purge() RETURNS void LANGUAGE sql AS $body$
  DELETE FROM sessions;
  CREATE INDEX x ON users (a);
$body$;
SELECT $q$ALTER TABLE users ALTER COLUMN a TYPE text$q$;
-- @rollback_add
DROP FUNCTION purge();
";
    assert_eq!(found(pg, Dialect::Postgres), []);
    let sqlite = "-- @add
CREATE TRIGGER t AFTER INSERT ON users
BEGIN
  DELETE FROM cache;
  UPDATE stats SET n = n + 1;
END;
-- @rollback_add
DROP TRIGGER t;
";
    assert_eq!(found(sqlite, Dialect::Sqlite), []);
}

#[test]
fn the_same_statement_is_judged_by_its_section() {
    let text = "-- @add
ALTER TABLE users ADD COLUMN b text;
-- @rollback_add
ALTER TABLE users DROP COLUMN b;
-- @simdrop
ALTER TABLE users RENAME COLUMN a TO _a;
-- @rollback_simdrop
ALTER TABLE users RENAME COLUMN _a TO a;
-- @drop
ALTER TABLE users DROP COLUMN _a;
DROP TABLE old;
DELETE FROM sessions;
";
    assert_eq!(found(text, Dialect::Sqlite), []);
    let moved = text.replace("-- @drop", "-- @add2").replace("-- @add\n", "-- @drop\n").replace("-- @add2", "-- @add");
    let m = migration(&moved);
    let gate = lint_sections(&m, &[SectionKind::Add], Dialect::Sqlite);
    let rules: Vec<&str> = gate.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["drop-in-add", "drop-in-add", "unbounded-dml"]);
    // The same file, gated for `drop` only, has nothing to say.
    assert_eq!(lint_sections(&m, &[SectionKind::Drop], Dialect::Sqlite), []);
}

#[test]
fn silencing_per_statement_and_per_section() {
    let text = "-- @add
-- pygrate:allow drop-in-add
DROP TABLE a;
DROP TABLE b; -- pygrate:allow drop-in-add
-- pygrate:allow rename-in-add -- another rule does not count
DROP TABLE c;
-- @rollback_add -- pygrate:allow drop-in-add
SELECT 1;
-- @simdrop -- pygrate:allow data-loss-in-simdrop, missing-rollback
DROP TABLE d;
";
    assert_eq!(found(text, Dialect::Sqlite), pairs(&[(6, "drop-in-add")]));
}

#[test]
fn dialect_rules_stay_in_their_dialect() {
    let text = "-- @add
CREATE INDEX i ON users (a);
ALTER TABLE users ALTER COLUMN a SET NOT NULL;
-- @rollback_add
DROP INDEX i;
";
    assert_eq!(found(text, Dialect::Postgres), pairs(&[(2, "index-not-concurrent"), (3, "set-not-null")]));
    assert_eq!(found(text, Dialect::Sqlite), []);
    assert_eq!(found(text, Dialect::Mysql), pairs(&[(3, "mysql-online-ddl")]));
}

#[test]
fn a_section_that_does_not_lex_is_skipped() {
    let text =
        "-- @add\nDROP TABLE a;\nSELECT 'unterminated;\n-- @rollback_add\nSELECT 1;\n-- @simdrop\nDROP TABLE b;\n";
    // `@add` is the parser's to report; `@simdrop` is still linted, and its
    // missing rollback is reported while `@add`'s rollback is not judged.
    assert_eq!(found(text, Dialect::Sqlite), pairs(&[(6, "missing-rollback"), (7, "data-loss-in-simdrop")]));
}

#[test]
fn finding_display_and_json() {
    let findings = lint_migration(&migration("-- @add\nDROP TABLE a;\n-- @rollback_add\nSELECT 1;\n"), Dialect::Sqlite);
    let [f] = &findings[..] else { panic!("{findings:?}") };
    assert_eq!(
        f.to_string(),
        "r/v.sql:2: error[drop-in-add]: DROP TABLE `a` in `@add`: the code still running during the rollout may use it\n  fix: hide it in `-- @simdrop` (rename it to a parking name) and drop it in `-- @drop`"
    );
    assert_eq!(
        f.to_json(),
        serde_json::json!({
            "file": "r/v.sql",
            "line": 2,
            "rule": "drop-in-add",
            "level": "error",
            "message": f.message,
            "fix": f.fix,
        })
    );
    assert_eq!(Level::Warning.to_string(), "warning");
}

#[test]
fn unknown_allow_suggests_the_closest_rule() {
    let findings = lint_migration(
        &migration("-- @add\n-- pygrate:allow drop-in-ad\nSELECT 1;\n-- @rollback_add\nSELECT 1;\n"),
        Dialect::Sqlite,
    );
    let [f] = &findings[..] else { panic!("{findings:?}") };
    assert_eq!((f.line, f.rule.as_str(), f.fix.as_str()), (2, "unknown-allow", "did you mean `drop-in-add`?"));
}

#[test]
fn every_finding_names_a_rule_with_its_level() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lint");
    let text = fs::read_to_string(root.join("unbounded-dml/generic.sql")).unwrap_or_default();
    for f in lint_migration(&migration(&text), Dialect::Postgres) {
        let rule = RULES.iter().find(|r| r.id == f.rule);
        assert_eq!(rule.map(|r| r.level), Some(f.level), "{f}");
        assert!(!f.message.contains('\n') && !f.fix.contains('\n'), "{f}");
    }
}

#[test]
fn messages_and_fixes_have_no_stray_spaces() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lint");
    let files = fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| fs::read_dir(d.path()).into_iter().flatten().flatten());
    for file in files.map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "sql")) {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for dialect in DIALECTS {
            for f in lint_migration(&migration(&text), dialect) {
                assert!(!f.message.contains("  ") && !f.fix.contains("  "), "{}: {f}", file.display());
            }
        }
    }
}

#[test]
fn concurrently_in_a_transaction_says_the_whole_fix() {
    let text = "-- @add\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- @rollback_add\nDROP INDEX i;\n";
    let findings = lint_migration(&migration(text), Dialect::Postgres);
    let f = findings.iter().find(|f| f.rule == "concurrently-in-transaction");
    assert_eq!(
        f.map(|f| f.fix.as_str()),
        Some(
            "mark the section `-- @add no-transaction`, or, to keep the rest of `@add` in its transaction, \
             move the statement to a version of its own whose `@add` is `no-transaction`"
        )
    );
}

#[test]
fn allow_directives_are_read_in_any_case() {
    let text = "-- @add\n-- PYGRATE:ALLOW DROP-IN-ADD\nDROP TABLE a;\nDROP TABLE b; /* Pygrate:Allow Drop-In-Add */\n\
                -- @rollback_add -- PYGRATE:allow MISSING-ROLLBACK\n-- @simdrop\n-- PYGRATE:ALLOW NO-SUCH-RULE\nSELECT 1;\n\
                -- @rollback_simdrop\nSELECT 1;\n";
    assert_eq!(found(text, Dialect::Sqlite), pairs(&[(7, "unknown-allow")]));
}
