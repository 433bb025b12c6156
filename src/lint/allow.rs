//! Which `-- pygrate:allow RULE[,RULE]` comments apply to which statement.
//!
//! A directive applies to a statement when its comment
//! - is inside the statement or on one of the lines it spans (a trailing
//!   comment after its `;` included), or
//! - is in the block of comment-only lines directly above its first line
//!   (a blank line, or a line with code, ends the block).

use std::collections::BTreeSet;

use crate::dialect::Dialect;
use crate::lexer::{Lexer, Token, TokenKind};
use crate::parser::{after_allow_directive, allowed_rules};
use crate::splitter::Statement;

/// One `pygrate:allow` comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub first_line: usize,
    pub last_line: usize,
    pub rules: Vec<String>,
}

/// The comments and code lines of a section body, for placing directives.
#[derive(Debug, Default)]
pub(crate) struct Comments {
    pub directives: Vec<Directive>,
    comment_lines: BTreeSet<usize>,
    /// Lines where a `--` comment starts.
    line_comments: BTreeSet<usize>,
    code_lines: BTreeSet<usize>,
    first_line: usize,
}

impl Comments {
    /// Reads the comments of `body` (whose first line is `first_line`) around
    /// and inside `statements`, the body's statements in order.
    pub fn new(body: &str, first_line: usize, statements: &[Statement<'_>], dialect: Dialect) -> Self {
        let mut comments = Comments { first_line, ..Comments::default() };
        let mut gap_start = 0;
        // The ranges come in order: each one's first line is counted on from
        // the last (counting from the top each time was quadratic).
        let mut at = (0, first_line);
        let mut line_of = |offset: usize| {
            at = (offset, at.1 + body.get(at.0..offset).map_or(0, |skipped| skipped.matches('\n').count()));
            at.1
        };
        // Gaps hold what the splitter left between statements: comments,
        // delimiters and `DELIMITER` lines. A gap that does not lex (a custom
        // delimiter that looks like a quote) only loses its directives.
        for statement in statements {
            comments.read(body, gap_start..statement.span.start, line_of(gap_start), dialect);
            comments.read(body, statement.span.clone(), line_of(statement.span.start), dialect);
            gap_start = statement.span.end;
        }
        comments.read(body, gap_start..body.len(), line_of(gap_start), dialect);
        comments
    }

    /// Reads `body[range]`, whose first line is `line`.
    fn read(&mut self, body: &str, range: std::ops::Range<usize>, line: usize, dialect: Dialect) {
        let Some(text) = body.get(range) else {
            return;
        };
        for token in Lexer::new(text, line, dialect).map_while(Result::ok) {
            let last_line = token.line + token.text.matches('\n').count();
            match token.kind {
                TokenKind::Whitespace => {}
                TokenKind::LineComment | TokenKind::BlockComment => {
                    self.comment_lines.extend(token.line..=last_line);
                    if token.kind == TokenKind::LineComment {
                        self.line_comments.insert(token.line);
                    }
                    if let Some(rules) = directive_rules(&token) {
                        self.directives.push(Directive { first_line: token.line, last_line, rules });
                    }
                }
                _ => {
                    self.code_lines.extend(token.line..=last_line);
                }
            }
        }
    }

    /// Whether a `--` comment starts on `line`.
    pub fn holds_line_comment(&self, line: usize) -> bool {
        self.line_comments.contains(&line)
    }

    /// Whether `line` holds a `--` comment and no code.
    pub fn is_line_comment(&self, line: usize) -> bool {
        self.line_comments.contains(&line) && !self.code_lines.contains(&line)
    }

    /// The rules silenced for the statement spanning `first..=last`.
    pub fn allowed_for(&self, first: usize, last: usize) -> Vec<String> {
        let mut top = first;
        while top > self.first_line && self.comment_lines.contains(&(top - 1)) && !self.code_lines.contains(&(top - 1))
        {
            top -= 1;
        }
        self.directives
            .iter()
            .filter(|d| {
                let on_statement = d.first_line <= last && d.last_line >= first;
                let above = d.first_line >= top && d.last_line < first;
                on_statement || above
            })
            .flat_map(|d| d.rules.iter().cloned())
            .collect()
    }
}

/// The rule ids of a comment holding a directive; `None` when it holds none.
fn directive_rules(token: &Token<'_>) -> Option<Vec<String>> {
    after_allow_directive(token.text)?;
    // A block comment's closing `*/` is not a rule id.
    let text = match token.kind {
        TokenKind::BlockComment => token.text.strip_suffix("*/").unwrap_or(token.text),
        _ => token.text,
    };
    Some(allowed_rules(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splitter::split;

    /// The allowed rules of each statement of `body` (first line 1).
    fn allowed(body: &str) -> Vec<Vec<String>> {
        let statements = split(body, 1, Dialect::Postgres).unwrap_or_default();
        let comments = Comments::new(body, 1, &statements, Dialect::Postgres);
        statements.iter().map(|s| comments.allowed_for(s.line, s.line + s.sql.matches('\n').count())).collect()
    }

    #[test]
    fn directives_above_on_and_inside_statements() {
        let body = "\
-- pygrate:allow a
-- more words
/* pygrate:allow b, c */
SELECT 1;
SELECT 2; -- pygrate:allow d -- because
SELECT 3
  -- pygrate:allow e
  , 4;
-- pygrate:allow f

SELECT 5;
SELECT 6; /* pygrate:allow g
*/ SELECT 7;
";
        assert_eq!(
            allowed(body),
            vec![
                vec!["a".to_string(), "b".into(), "c".into()],
                vec!["d".into()],
                vec!["e".into()],
                // A blank line separates `f` from SELECT 5.
                vec![],
                vec!["g".into()],
                vec!["g".into()],
            ]
        );
    }

    /// `-- pygrate: allow r` (a space after the colon) silenced nothing and
    /// said nothing; spaces around the colon are read as the directive.
    #[test]
    fn spaces_around_the_colon_still_make_a_directive() {
        let body = "-- pygrate: allow a\nSELECT 1;\n/* Pygrate :\tALLOW b */ SELECT 2;\n-- pygrate allow c\nSELECT 3;";
        assert_eq!(allowed(body), vec![vec!["a".to_string()], vec!["b".into()], vec![]]);
    }

    #[test]
    fn a_code_line_ends_the_block_above() {
        let body = "SELECT 1; -- pygrate:allow a\n-- pygrate:allow b\nSELECT 2;";
        assert_eq!(allowed(body), vec![vec!["a".to_string()], vec!["b".into()]]);
    }
}
