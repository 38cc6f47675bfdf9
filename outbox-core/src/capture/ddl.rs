//! What `capture migrate` accepts: one `ALTER TABLE` of the captured table, nothing else.
//!
//! `capture migrate` applies its DDL past the PostgreSQL guard and checks only the captured
//! table's next schema, so any other statement would go unchecked: an `ALTER TABLE` of
//! another (perhaps captured) table, a `DROP`, a second statement after a `;` (SQLite runs
//! every statement of a text). The DDL is read far enough to be sure of its shape: quotes,
//! comments and PostgreSQL's dollar quotes are skipped, never interpreted.

use crate::table::{Dialect, Identifier, TableNames};

/// A token of the DDL's head.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word (keyword or name), as written.
    Word(String),
    /// A quoted name, unescaped.
    Quoted(String),
    /// `.`
    Dot,
    /// `;`
    Semicolon,
    /// Anything else: a literal, an operator, a parenthesis.
    Other,
}

/// Checks that `ddl` is one `ALTER TABLE` of `table` (in the outbox's schema when one is set).
///
/// # Errors
///
/// Why not, in words for the operator: several statements, another statement than
/// `ALTER TABLE`, another table, a qualified name where none is expected, an unterminated
/// quote or comment.
///
/// # Examples
///
/// ```
/// use outbox_core::capture::check_migrate_ddl;
/// use outbox_core::table::{Dialect, Identifier, TableNames};
///
/// let (names, t) = (TableNames::default(), Identifier::new("orders")?);
/// assert!(check_migrate_ddl(Dialect::Postgres, &names, &t, "ALTER TABLE orders ADD note TEXT;").is_ok());
/// assert!(check_migrate_ddl(Dialect::Postgres, &names, &t, "DROP TABLE orders").is_err());
/// assert!(check_migrate_ddl(Dialect::Sqlite, &names, &t, "ALTER TABLE orders ADD x; DROP TABLE y").is_err());
/// # Ok::<(), outbox_core::Error>(())
/// ```
pub fn check_migrate_ddl(
    dialect: Dialect,
    names: &TableNames,
    table: &Identifier,
    ddl: &str,
) -> Result<(), String> {
    let tokens = tokens(dialect, ddl)?;
    if let Some(end) = tokens.iter().position(|t| *t == Token::Semicolon)
        && tokens[end..].iter().any(|t| *t != Token::Semicolon)
    {
        return Err("the DDL holds several statements; give one ALTER TABLE".to_owned());
    }
    let mut it = tokens.iter().peekable();
    let mut keyword = |want: &str| match it.peek() {
        Some(Token::Word(w)) if w.eq_ignore_ascii_case(want) => {
            it.next();
            true
        }
        _ => false,
    };
    if !keyword("alter") {
        return Err(format!(
            "only ALTER TABLE {table} is applied through capture migrate"
        ));
    }
    if dialect == Dialect::MySql {
        keyword("online");
        keyword("ignore");
    }
    if !keyword("table") {
        return Err(format!(
            "only ALTER TABLE {table} is applied through capture migrate"
        ));
    }
    if dialect == Dialect::Postgres {
        if keyword("if") && !keyword("exists") {
            return Err("expected IF EXISTS".to_owned());
        }
        keyword("only");
    }
    let mut parts = Vec::new();
    loop {
        match it.next() {
            Some(Token::Word(w)) => parts.push(fold(dialect, w, false)),
            Some(Token::Quoted(q)) => parts.push(fold(dialect, q, true)),
            _ => return Err("expected the table's name after ALTER TABLE".to_owned()),
        }
        if it.peek() == Some(&&Token::Dot) {
            it.next();
        } else {
            break;
        }
    }
    let same = |written: &str, name: &str| match dialect {
        Dialect::Postgres => written == name,
        Dialect::MySql | Dialect::Sqlite => written.eq_ignore_ascii_case(name),
    };
    let (schema, name) = match parts.as_slice() {
        [name] => (None, name),
        [schema, name] => (Some(schema), name),
        _ => return Err("the table's name has too many parts".to_owned()),
    };
    if !same(name, table.as_str()) {
        return Err(format!(
            "the DDL alters {name}, not the captured table {table}"
        ));
    }
    match (schema, names.schema(), dialect) {
        (None, _, Dialect::MySql | Dialect::Sqlite) | (None, None, Dialect::Postgres) => Ok(()),
        (Some(written), Some(schema), Dialect::Postgres) if same(written, schema.as_str()) => {
            Ok(())
        }
        (None, Some(schema), Dialect::Postgres) => Err(format!(
            "name the table {schema}.{table}, as it is captured"
        )),
        (Some(written), _, _) => Err(format!(
            "name the table unqualified, not in {written} (it is resolved as the capture was)"
        )),
    }
}

/// A name as the database resolves it: PostgreSQL folds unquoted names to lower case.
fn fold(dialect: Dialect, name: &str, quoted: bool) -> String {
    if dialect == Dialect::Postgres && !quoted {
        name.to_lowercase()
    } else {
        name.to_owned()
    }
}

/// The tokens of `ddl`, comments and whitespace left out.
fn tokens(dialect: Dialect, ddl: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = ddl.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if at(i, "--") || (c == '#' && dialect == Dialect::MySql) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&k| at(k, "*/"))
                .ok_or("the DDL has an unterminated comment")?;
            i = end + 2;
        } else if c == '\'' || (c == '"' && dialect == Dialect::MySql) {
            i = quoted(&chars, i, c, dialect == Dialect::MySql)?.1;
            out.push(Token::Other);
        } else if c == '"' || (c == '`' && dialect != Dialect::Postgres) {
            let (name, next) = quoted(&chars, i, c, false)?;
            out.push(Token::Quoted(name));
            i = next;
        } else if c == '[' && dialect == Dialect::Sqlite {
            let end = (i + 1..chars.len())
                .find(|&k| chars[k] == ']')
                .ok_or("the DDL has an unterminated [name]")?;
            out.push(Token::Quoted(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else if c == '$' && dialect == Dialect::Postgres && dollar_tag(&chars, i).is_some() {
            let tag: String = dollar_tag(&chars, i).unwrap_or_default();
            let len = tag.chars().count();
            let end = (i + len..chars.len())
                .find(|&k| at(k, &tag))
                .ok_or("the DDL has an unterminated dollar quote")?;
            out.push(Token::Other);
            i = end + len;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '$')) {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(match c {
                '.' => Token::Dot,
                ';' => Token::Semicolon,
                _ => Token::Other,
            });
            i += 1;
        }
    }
    Ok(out)
}

/// The text quoted by `quote` from `chars[start]`, and the index after it; a doubled quote
/// is one, and with `backslash` a backslash escapes the next character (MySQL strings).
fn quoted(
    chars: &[char],
    start: usize,
    quote: char,
    backslash: bool,
) -> Result<(String, usize), String> {
    let mut text = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if backslash => {
                text.extend(chars.get(i + 1));
                i += 2;
            }
            c if c == quote && chars.get(i + 1) == Some(&quote) => {
                text.push(quote);
                i += 2;
            }
            c if c == quote => return Ok((text, i + 1)),
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err(format!("the DDL has an unterminated {quote}"))
}

/// PostgreSQL's `$tag$` opening a dollar-quoted string at `chars[i]`, if there is one.
fn dollar_tag(chars: &[char], i: usize) -> Option<String> {
    let rest = chars.get(i + 1..)?;
    let len = rest.iter().position(|&c| c == '$')?;
    let tag = &rest[..len];
    let valid = tag.first().is_none_or(|c| c.is_alphabetic() || *c == '_')
        && tag.iter().all(|c| c.is_alphanumeric() || *c == '_');
    valid.then(|| format!("${}$", tag.iter().collect::<String>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(dialect: Dialect, ddl: &str) -> Result<(), String> {
        let t = Identifier::new("Orders").expect("name");
        check_migrate_ddl(dialect, &TableNames::default(), &t, ddl)
    }

    #[test]
    fn one_alter_of_the_table_passes() {
        use Dialect::{MySql, Postgres, Sqlite};
        assert_eq!(
            check(Postgres, "ALTER TABLE \"Orders\" ADD note TEXT;"),
            Ok(())
        );
        assert_eq!(
            check(Postgres, "alter table if exists only \"Orders\" add x int"),
            Ok(())
        );
        assert_eq!(
            check(
                Postgres,
                "/* why */ ALTER TABLE \"Orders\" ADD x TEXT DEFAULT ';drop'"
            ),
            Ok(())
        );
        assert_eq!(
            check(
                Postgres,
                "ALTER TABLE \"Orders\" ADD x TEXT DEFAULT $q$; DROP TABLE y$q$ ;;"
            ),
            Ok(())
        );
        assert_eq!(
            check(MySql, "ALTER TABLE orders ADD x INT COMMENT 'a\\';b'"),
            Ok(())
        );
        assert_eq!(
            check(MySql, "alter ignore table `Orders` add x int # ; no"),
            Ok(())
        );
        assert_eq!(check(Sqlite, "ALTER TABLE [Orders] ADD x INT"), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        use Dialect::{MySql, Postgres, Sqlite};
        let refused = |d, ddl, why: &str| {
            let err = check(d, ddl).expect_err(ddl);
            assert!(err.contains(why), "{ddl}: {err}");
        };
        refused(
            Sqlite,
            "ALTER TABLE Orders ADD x INT; DROP TABLE y",
            "several statements",
        );
        refused(
            Postgres,
            "ALTER TABLE \"Orders\" ADD x INT;\nDROP TABLE y",
            "several",
        );
        refused(Postgres, "DROP TABLE \"Orders\"", "only ALTER TABLE");
        refused(MySql, "CREATE TABLE x (id INT)", "only ALTER TABLE");
        refused(Postgres, "ALTER TABLE orders ADD x INT", "alters orders");
        refused(
            MySql,
            "ALTER TABLE other ADD x INT",
            "not the captured table Orders",
        );
        refused(
            Postgres,
            "ALTER TABLE public.\"Orders\" ADD x INT",
            "unqualified",
        );
        refused(MySql, "ALTER TABLE `db`.`Orders` ADD x INT", "unqualified");
        refused(Postgres, "ALTER TABLE \"Orders ADD x INT", "unterminated");
        refused(
            Postgres,
            "ALTER TABLE /* \"Orders\" ADD x INT",
            "unterminated comment",
        );
        refused(Postgres, "ALTER TABLE", "expected the table's name");
        refused(
            Postgres,
            "ALTER INDEX \"Orders\" RENAME TO x",
            "only ALTER TABLE",
        );
    }

    #[test]
    fn a_schema_set_asks_for_the_qualified_name() {
        let names = TableNames::default().in_schema("sales").expect("schema");
        let t = Identifier::new("orders").expect("name");
        let pg = |ddl| check_migrate_ddl(Dialect::Postgres, &names, &t, ddl);
        assert_eq!(pg("ALTER TABLE sales.orders ADD x INT"), Ok(()));
        assert_eq!(pg("ALTER TABLE \"sales\".\"orders\" ADD x INT"), Ok(()));
        assert!(pg("ALTER TABLE orders ADD x INT").is_err_and(|e| e.contains("sales.orders")));
        assert!(pg("ALTER TABLE other.orders ADD x INT").is_err());
    }
}
