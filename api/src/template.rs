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
    /// `randomString(n)`: `n` random letters and digits (`A-Z`, `a-z`, `0-9`), as
    /// redis-benchmark's `-d` and memtier's `--data-size` make values of a size.
    RandomString(u32),
    /// `zipf(n, s)`: an integer rank in `1..=n`, rank `k` drawn with probability
    /// proportional to `1/k^s`: a few keys hot, a long tail cold (memtier's
    /// `--key-pattern=Z`).
    Zipf(u64, f64),
    /// `gaussian(mean, sd)`: a normally distributed number.
    Gaussian(f64, f64),
}

pub const FUNCTIONS: &[&str] = &[
    "random(a, b)",
    "uuid()",
    "now_ms()",
    "randomString(n)",
    "zipf(n, s)",
    "gaussian(mean, sd)",
];

/// The longest `randomString(n)`: 1 MiB.
pub const MAX_RANDOM_STRING: u32 = 1 << 20;

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

/// A finite number argument of `func`.
fn number(func: &str, a: &str) -> Result<f64, TemplateError> {
    a.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| TemplateError(format!("`{func}` takes numbers, found `{a}`")))
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
            "randomString" => match ints()?.as_slice() {
                [n] if (1..=i64::from(MAX_RANDOM_STRING)).contains(n) => {
                    Call::RandomString(*n as u32)
                }
                [n] => {
                    return Err(TemplateError(format!(
                        "randomString({n}): the length must be 1 to {MAX_RANDOM_STRING}"
                    )));
                }
                _ => {
                    return Err(TemplateError(
                        "randomString takes one argument: randomString(n)".into(),
                    ));
                }
            },
            "zipf" => match args.as_slice() {
                [n, s] => {
                    let n: u64 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        TemplateError(format!(
                            "zipf(n, s): n is a whole number of at least 1, found `{n}`"
                        ))
                    })?;
                    let s = number(func, s)?;
                    if !(s > 0.0 && s <= 100.0) {
                        return Err(TemplateError(format!(
                            "zipf(n, s): the exponent s must lie in (0, 100], found {s}"
                        )));
                    }
                    Call::Zipf(n, s)
                }
                _ => {
                    return Err(TemplateError("zipf takes two arguments: zipf(n, s)".into()));
                }
            },
            "gaussian" => match args.as_slice() {
                [m, sd] => {
                    let (m, sd) = (number(func, m)?, number(func, sd)?);
                    if sd < 0.0 {
                        return Err(TemplateError(format!(
                            "gaussian(mean, sd): sd cannot be negative, found {sd}"
                        )));
                    }
                    Call::Gaussian(m, sd)
                }
                _ => {
                    return Err(TemplateError(
                        "gaussian takes two arguments: gaussian(mean, sd)".into(),
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
        for bad in [
            "{{ randomString(0) }}",
            "{{ randomString(2000000) }}",
            "{{ zipf(0, 1.1) }}",
            "{{ zipf(10, 0) }}",
            "{{ zipf(10) }}",
            "{{ gaussian(1, -2) }}",
            "{{ gaussian(x, 2) }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Template::parse(
                "{{ zipf(100000, 1.1) }}{{ gaussian(50, 7.5) }}{{ randomString(100) }}"
            )
            .unwrap()
            .parts,
            vec![
                Part::Expr(Expr::Call(Call::Zipf(100_000, 1.1))),
                Part::Expr(Expr::Call(Call::Gaussian(50.0, 7.5))),
                Part::Expr(Expr::Call(Call::RandomString(100))),
            ]
        );
        assert!(Template::parse("{{ a b }}").is_err());
    }
}
