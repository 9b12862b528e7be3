//! Template syntax: text with `{{ expr }}` holes, parsed once when a file is loaded.
//! Pure: parsing and name checks only; the runner compiles the AST into slots and renders it.

use std::fmt;

/// A parsed template: literal text and expressions, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

/// An expression inside `{{ }}`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A dotted name: `token`, `vu.id`, `users.name`.
    Name(Vec<String>),
    /// A call to a built-in function.
    Call(Call),
}

/// The built-in functions. The set is closed so a typo fails at load, not mid-test.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `random(a, b)`: a uniformly random integer in `a..=b`.
    Random(i64, i64),
    /// `uuid()`: a random version 4 UUID.
    Uuid,
    /// `now_ms()`: Unix time in milliseconds.
    NowMs,
}

pub const FUNCTIONS: &[&str] = &["random(a, b)", "uuid()", "now_ms()"];

/// Names every template may use whatever the scenario defines.
pub const BUILTIN_NAMES: &[&str] = &["vu.id", "iteration"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `src`. A string without `{{` is one literal part.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError(format!("unclosed `{{{{` in {src:?}")))?;
            parts.push(Part::Expr(parse_expr(after[..close].trim())?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// True when the template has no expressions, so it can be rendered once at load.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The dotted names the template refers to.
    pub fn names(&self) -> impl Iterator<Item = &[String]> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(Expr::Name(n)) => Some(n.as_slice()),
            _ => None,
        })
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_expr(e: &str) -> Result<Expr, TemplateError> {
    if e.is_empty() {
        return Err(TemplateError("empty `{{ }}`".into()));
    }
    if let Some(open) = e.find('(') {
        let func = e[..open].trim();
        let args_src = e[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| TemplateError(format!("expected `)` at the end of `{e}`")))?;
        let args: Vec<&str> = if args_src.trim().is_empty() {
            Vec::new()
        } else {
            args_src.split(',').map(str::trim).collect()
        };
        let ints = || -> Result<Vec<i64>, TemplateError> {
            args.iter()
                .map(|a| {
                    a.parse::<i64>().map_err(|_| {
                        TemplateError(format!("`{func}` takes whole numbers, found `{a}`"))
                    })
                })
                .collect()
        };
        let call = match func {
            "random" => match ints()?.as_slice() {
                [a, b] if a <= b => Call::Random(*a, *b),
                [a, b] => {
                    return Err(TemplateError(format!(
                        "random({a}, {b}): the lower bound must not exceed the upper bound"
                    )));
                }
                _ => {
                    return Err(TemplateError(
                        "random takes two arguments: random(a, b)".into(),
                    ));
                }
            },
            "uuid" | "now_ms" if !args.is_empty() => {
                return Err(TemplateError(format!("{func}() takes no arguments")));
            }
            "uuid" => Call::Uuid,
            "now_ms" => Call::NowMs,
            other => {
                return Err(TemplateError(format!(
                    "unknown template function `{other}`; known functions: {}",
                    FUNCTIONS.join(", ")
                )));
            }
        };
        return Ok(Expr::Call(call));
    }
    let segments: Vec<String> = e.split('.').map(|s| s.trim().to_string()).collect();
    if segments.iter().all(|s| is_ident(s)) {
        Ok(Expr::Name(segments))
    } else {
        Err(TemplateError(format!(
            "`{e}` is neither a name (like `token` or `users.name`) nor a function call"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_expressions() {
        let t = Template::parse("/buy/{{ random(1, 100) }}?u={{users.name}}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Text("/buy/".into()),
                Part::Expr(Expr::Call(Call::Random(1, 100))),
                Part::Text("?u=".into()),
                Part::Expr(Expr::Name(vec!["users".into(), "name".into()])),
            ]
        );
        assert!(!t.is_static());
        assert!(Template::parse("/plain").unwrap().is_static());
    }

    #[test]
    fn unknown_functions_and_bad_syntax_are_named() {
        let e = Template::parse("{{ rand(1,2) }}").unwrap_err();
        assert!(e.0.contains("unknown template function `rand`"), "{e}");
        assert!(
            Template::parse("{{ uuid() ")
                .unwrap_err()
                .0
                .contains("unclosed")
        );
        assert!(Template::parse("{{ random(5, 1) }}").is_err());
        assert!(Template::parse("{{ a b }}").is_err());
    }
}
