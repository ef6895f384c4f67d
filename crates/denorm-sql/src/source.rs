//! Positions in the views file: sqlparser's line:column locations, the token
//! stream of one statement, and the start of an AST expression.
//!
//! Two traps in sqlparser 0.63 shape this module:
//!
//! * `Spanned::span()` of many nodes is wrong at the end (a function call's
//!   span stops before its `)`, `CAST(x AS T)` spans only `x`, a parenthesized
//!   expression omits its parentheses), so text is sliced from tokens, never
//!   from AST spans.
//! * `Spanned::span()` recurses through the whole subtree; a left-deep chain
//!   like `1+1+…+1` is as deep as it is long and overflows the stack. The
//!   start of an expression is therefore found by walking down its leftmost
//!   child in a loop ([`Statement::start_of`]).

use sqlparser::ast::{self, CastKind};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location as SqlLocation, Token, TokenWithSpan};

use crate::Location;

/// The views file's text with an index of line starts.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    pub text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { text, line_starts }
    }

    /// Byte offset of a 1-based line:column (columns count characters).
    pub fn offset(&self, loc: SqlLocation) -> Option<usize> {
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let column = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let start = *self.line_starts.get(line)?;
        let rest = self.text.get(start..)?;
        match rest.char_indices().nth(column) {
            Some((i, _)) => Some(start + i),
            None if rest.chars().count() == column => Some(self.text.len()),
            None => None,
        }
    }

    /// The text from `start` (inclusive) to `end` (exclusive).
    pub fn slice(&self, start: SqlLocation, end: SqlLocation) -> Option<&'a str> {
        let (s, e) = (self.offset(start)?, self.offset(end)?);
        self.text.get(s..e)
    }
}

/// A public [`Location`] from sqlparser's; `None` for its empty location.
pub(crate) fn location(loc: SqlLocation) -> Option<Location> {
    (loc.line > 0 && loc.column > 0).then_some(Location { line: loc.line, column: loc.column })
}

fn is_significant(t: &TokenWithSpan) -> bool {
    !matches!(t.token, Token::Whitespace(_) | Token::EOF)
}

/// The tokens of one statement (without its `;`), whitespace included.
#[derive(Debug)]
pub(crate) struct Statement {
    pub tokens: Vec<TokenWithSpan>,
}

impl Statement {
    /// Start and end of the first and last significant tokens.
    pub fn bounds(&self) -> Option<(SqlLocation, SqlLocation)> {
        let first = self.tokens.iter().find(|t| is_significant(t))?;
        let last = self.tokens.iter().rev().find(|t| is_significant(t))?;
        Some((first.span.start, last.span.end))
    }

    pub fn significant_count(&self) -> usize {
        self.tokens.iter().filter(|t| is_significant(t)).count()
    }

    /// Index of the token starting exactly at `loc`.
    fn index_at(&self, loc: SqlLocation) -> Option<usize> {
        let key = (loc.line, loc.column);
        self.tokens.binary_search_by(|t| (t.span.start.line, t.span.start.column).cmp(&key)).ok()
    }

    fn prev_significant(&self, index: usize) -> Option<usize> {
        (0..index).rev().find(|&i| is_significant(&self.tokens[i]))
    }

    /// Moves `steps` significant tokens back from the token at `loc`.
    pub fn back(&self, loc: SqlLocation, steps: usize) -> SqlLocation {
        let Some(mut index) = self.index_at(loc) else { return loc };
        for _ in 0..steps {
            match self.prev_significant(index) {
                Some(i) => index = i,
                None => break,
            }
        }
        self.tokens[index].span.start
    }

    /// The keyword before the innermost unclosed `(` preceding `loc`: the
    /// start of `CAST(`, `EXTRACT(`, `SUBSTRING(` and the like.
    fn back_to_call(&self, loc: SqlLocation) -> SqlLocation {
        let Some(index) = self.index_at(loc) else { return loc };
        let mut depth = 0usize;
        for i in (0..index).rev() {
            match self.tokens[i].token {
                Token::RParen => depth += 1,
                Token::LParen if depth == 0 => {
                    let start = self.tokens[i].span.start;
                    return self.prev_significant(i).map_or(start, |p| self.tokens[p].span.start);
                }
                Token::LParen => depth -= 1,
                _ => {}
            }
        }
        loc
    }

    /// Moves back from `loc` over immediately preceding words that are any of
    /// `keywords` (e.g. to the `LEFT` of `LEFT OUTER JOIN t`).
    pub fn back_over_keywords(&self, loc: SqlLocation, keywords: &[Keyword]) -> SqlLocation {
        let Some(mut index) = self.index_at(loc) else { return loc };
        while let Some(p) = self.prev_significant(index) {
            match &self.tokens[p].token {
                Token::Word(w) if keywords.contains(&w.keyword) => index = p,
                _ => break,
            }
        }
        self.tokens[index].span.start
    }

    /// The first token at parenthesis depth 0, at or after `from`, that is
    /// one of `keywords`.
    pub fn find_keyword(&self, from: SqlLocation, keywords: &[Keyword]) -> Option<&TokenWithSpan> {
        let start = (from.line, from.column);
        let mut depth = 0i64;
        for t in &self.tokens {
            match &t.token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                Token::Word(w)
                    if depth == 0
                        && keywords.contains(&w.keyword)
                        && w.quote_style.is_none()
                        && (t.span.start.line, t.span.start.column) >= start =>
                {
                    return Some(t);
                }
                _ => {}
            }
        }
        None
    }

    /// Significant tokens from `from` (inclusive) to the first depth-0
    /// keyword in `stop` (exclusive), split at depth-0 commas.
    pub fn comma_list(&self, from: SqlLocation, stop: &[Keyword]) -> Vec<Vec<&TokenWithSpan>> {
        let start = (from.line, from.column);
        let mut items = vec![Vec::new()];
        let mut depth = 0i64;
        for t in self.tokens.iter().filter(|t| is_significant(t)) {
            if (t.span.start.line, t.span.start.column) < start {
                continue;
            }
            match &t.token {
                Token::Word(w) if depth == 0 && w.quote_style.is_none() && stop.contains(&w.keyword) => break,
                Token::Comma if depth == 0 => {
                    items.push(Vec::new());
                    continue;
                }
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            if let Some(last) = items.last_mut() {
                last.push(t);
            }
        }
        items
    }

    /// Where an expression starts, found without recursion. `None` for node
    /// kinds whose start is not recorded; callers fall back to their clause.
    pub fn start_of(&self, expr: &ast::Expr) -> Option<SqlLocation> {
        use ast::Expr as E;
        // Each wrapper that hides its first token (`(`, `NOT`, `CAST(`)
        // pushes a step, applied innermost first once the leftmost leaf is found.
        let mut steps: Vec<Step> = Vec::new();
        let mut e = expr;
        let leaf = loop {
            e = match e {
                E::Identifier(i) => break i.span.start,
                E::CompoundIdentifier(v) => break v.first()?.span.start,
                E::Value(v) => break v.span.start,
                E::Case { case_token, .. } => break case_token.0.span.start,
                E::Function(f) => break object_name_start(&f.name)?,
                E::Wildcard(t) | E::QualifiedWildcard(_, t) => break t.0.span.start,
                E::Nested(inner) => {
                    steps.push(Step::Back(1));
                    inner
                }
                E::UnaryOp { expr, .. } => {
                    steps.push(Step::Back(1));
                    expr
                }
                E::Cast { kind: CastKind::DoubleColon, expr, .. } => expr,
                E::Cast { expr, .. }
                | E::Extract { expr, .. }
                | E::Substring { expr, .. }
                | E::Trim { expr, .. }
                | E::Overlay { expr, .. }
                | E::Ceil { expr, .. }
                | E::Floor { expr, .. }
                | E::Convert { expr, .. }
                | E::Position { expr, .. } => {
                    steps.push(Step::Call);
                    expr
                }
                E::Subquery(q) => {
                    steps.push(Step::Back(1));
                    break query_start(q)?;
                }
                E::Exists { subquery, negated } => {
                    steps.push(Step::Back(if *negated { 3 } else { 2 }));
                    break query_start(subquery)?;
                }
                E::IsNull(x)
                | E::IsNotNull(x)
                | E::IsTrue(x)
                | E::IsNotTrue(x)
                | E::IsFalse(x)
                | E::IsNotFalse(x)
                | E::IsUnknown(x)
                | E::IsNotUnknown(x)
                | E::IsDistinctFrom(x, _)
                | E::IsNotDistinctFrom(x, _) => x,
                E::BinaryOp { left, .. } | E::AnyOp { left, .. } | E::AllOp { left, .. } => left,
                E::InList { expr, .. }
                | E::InSubquery { expr, .. }
                | E::InUnnest { expr, .. }
                | E::Between { expr, .. }
                | E::Like { expr, .. }
                | E::ILike { expr, .. }
                | E::SimilarTo { expr, .. }
                | E::RLike { expr, .. }
                | E::Collate { expr, .. } => expr,
                E::AtTimeZone { timestamp, .. } => timestamp,
                E::Interval(i) => {
                    steps.push(Step::Back(1));
                    &i.value
                }
                E::TypedString(t) => {
                    steps.push(Step::Back(1));
                    break t.value.span.start;
                }
                E::Tuple(items) => {
                    steps.push(Step::Back(1));
                    items.first()?
                }
                E::GroupingSets(sets) | E::Cube(sets) | E::Rollup(sets) => {
                    steps.push(Step::Call);
                    sets.first()?.first()?
                }
                _ => return None,
            };
        };
        let start = steps.iter().rev().fold(leaf, |loc, step| match step {
            Step::Back(n) => self.back(loc, *n),
            Step::Call => self.back_to_call(loc),
        });
        Some(start)
    }
}

enum Step {
    Back(usize),
    Call,
}

pub(crate) fn object_name_start(name: &ast::ObjectName) -> Option<SqlLocation> {
    match name.0.first()? {
        ast::ObjectNamePart::Identifier(i) => Some(i.span.start),
        ast::ObjectNamePart::Function(f) => Some(f.name.span.start),
    }
}

fn query_start(q: &ast::Query) -> Option<SqlLocation> {
    match &*q.body {
        ast::SetExpr::Select(s) => Some(s.select_token.0.span.start),
        _ => None,
    }
}

/// Splits sqlparser's `"… at Line: 3, Column: 7"` into the message and its
/// location.
pub(crate) fn split_parser_message(message: &str) -> (String, Option<Location>) {
    let message = message.strip_prefix("sql parser error: ").unwrap_or(message);
    if let Some(at) = message.rfind(" at Line: ") {
        let (text, tail) = message.split_at(at);
        let mut numbers = tail.trim_start_matches(" at Line: ").split(", Column: ");
        let line = numbers.next().and_then(|n| n.trim().parse().ok());
        let column = numbers.next().and_then(|n| n.trim().parse().ok());
        if let (Some(line), Some(column)) = (line, column) {
            return (text.to_string(), location(SqlLocation { line, column }));
        }
    }
    (message.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters() {
        let s = Source::new("ab\nçd\n");
        assert_eq!(s.offset(SqlLocation { line: 2, column: 2 }), Some(5));
        assert_eq!(s.slice(SqlLocation { line: 2, column: 1 }, SqlLocation { line: 2, column: 3 }), Some("çd"));
        assert_eq!(s.offset(SqlLocation { line: 9, column: 1 }), None);
    }

    #[test]
    fn parser_messages_split() {
        let (m, l) = split_parser_message("sql parser error: Expected: x, found: y at Line: 3, Column: 7");
        assert_eq!(m, "Expected: x, found: y");
        assert_eq!(l, Some(Location { line: 3, column: 7 }));
    }
}
