//! Template syntax: text with `{{ expr }}` holes, parsed once when a file is loaded.
//! Pure: parsing, constant folding and type rules only; the runner compiles the AST into
//! slots and renders it.
//!
//! An expression is a name (`token`, `vu.id`, `users.name`), a built-in call, a literal
//! (`42`, `2.5`, `true`), or arithmetic over them (`+ - * / %`, unary `-`, parentheses).
//! A template that is exactly one expression keeps that expression's type (a number stays
//! a number in JSON and in typed parameters); anything else is text.

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
    Int(i64),
    Float(f64),
    Bool(bool),
    Neg(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
}

/// An arithmetic operator. On two integers `/` divides and truncates (as SQL and Rust do:
/// `{{ now_ms() / 1000 }}` is whole seconds) and `%` is the remainder; with a float on
/// either side the result is a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl Op {
    pub fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
            Op::Div => '/',
            Op::Rem => '%',
        }
    }
}

/// What an expression yields, as far as the file tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Int,
    Float,
    /// A number whose kind is known only when it renders (arithmetic over a value read from a
    /// reply or a data file: an integer when every operand is one).
    Number,
    Bool,
    /// Text: a value read from a reply, a data file or a variable, `uuid()`, `randomString`.
    Text,
}

impl Type {
    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Number)
    }
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

impl Call {
    pub fn result_type(&self) -> Type {
        match self {
            Call::Random(..) | Call::NowMs | Call::Zipf(..) => Type::Int,
            Call::Gaussian(..) => Type::Float,
            Call::Uuid | Call::RandomString(_) => Type::Text,
        }
    }
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
pub const BUILTIN_NAMES: &[&str] = &["vu.id", "iteration", "run.id"];

/// The longest expression inside one `{{ }}`, and how deep parentheses may nest: a file is
/// user input, and a parser that recursed without bound would overflow its stack.
const MAX_EXPR_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

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

    /// The expression, when the template is exactly one: its value keeps its type.
    pub fn single(&self) -> Option<&Expr> {
        match self.parts.as_slice() {
            [Part::Expr(e)] => Some(e),
            _ => None,
        }
    }

    /// The dotted names the template refers to, inside arithmetic too.
    pub fn names(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Expr(e) = p {
                e.names_into(&mut out);
            }
        }
        out
    }

    /// The names used as numbers (operands of arithmetic): their values must read as
    /// numbers.
    pub fn numeric_names(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Expr(e) = p {
                e.numeric_names_into(false, &mut out);
            }
        }
        out
    }
}

impl Expr {
    fn names_into<'a>(&'a self, out: &mut Vec<&'a [String]>) {
        match self {
            Expr::Name(n) => out.push(n),
            Expr::Neg(e) => e.names_into(out),
            Expr::Binary(_, a, b) => {
                a.names_into(out);
                b.names_into(out);
            }
            Expr::Call(_) | Expr::Int(_) | Expr::Float(_) | Expr::Bool(_) => {}
        }
    }

    fn numeric_names_into<'a>(&'a self, in_arith: bool, out: &mut Vec<&'a [String]>) {
        match self {
            Expr::Name(n) if in_arith => out.push(n),
            Expr::Neg(e) => e.numeric_names_into(true, out),
            Expr::Binary(_, a, b) => {
                a.numeric_names_into(true, out);
                b.numeric_names_into(true, out);
            }
            _ => {}
        }
    }

    /// The expression's type; `name` gives the type of each name (`vu.id` is an integer,
    /// a value read from a reply is text).
    pub fn type_of(&self, name: &impl Fn(&[String]) -> Type) -> Type {
        match self {
            Expr::Name(n) => name(n),
            Expr::Call(c) => c.result_type(),
            Expr::Int(_) => Type::Int,
            Expr::Float(_) => Type::Float,
            Expr::Bool(_) => Type::Bool,
            Expr::Neg(e) => match e.type_of(name) {
                Type::Int => Type::Int,
                Type::Float => Type::Float,
                _ => Type::Number,
            },
            Expr::Binary(_, a, b) => match (a.type_of(name), b.type_of(name)) {
                (Type::Int, Type::Int) => Type::Int,
                (Type::Float, _) | (_, Type::Float) => Type::Float,
                _ => Type::Number,
            },
        }
    }
}

/// The type of a name known to every scenario; other names are the scenario's own text.
pub fn builtin_type(name: &[String]) -> Type {
    match name {
        [one] if one == "iteration" => Type::Int,
        [a, b] if a == "vu" && b == "id" => Type::Int,
        _ => Type::Text,
    }
}

/// A number folded from literals, while parsing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// `self op other`. Integer overflow and division by zero give a float (the exact
    /// quotient, or ±inf/NaN), so a value is never silently wrapped.
    pub fn apply(self, op: Op, other: Num) -> Num {
        if let (Num::Int(a), Num::Int(b)) = (self, other) {
            let exact = match op {
                Op::Add => a.checked_add(b),
                Op::Sub => a.checked_sub(b),
                Op::Mul => a.checked_mul(b),
                Op::Div => a.checked_div(b),
                Op::Rem => a.checked_rem(b),
            };
            if let Some(v) = exact {
                return Num::Int(v);
            }
        }
        let (a, b) = (self.as_f64(), other.as_f64());
        Num::Float(match op {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Div => a / b,
            Op::Rem => a % b,
        })
    }

    /// Reads a number written as text (an extracted value, a data cell, a variable):
    /// an integer when it is one, else a float.
    pub fn parse(text: &str) -> Option<Num> {
        let t = text.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Some(Num::Int(i));
        }
        // `inf` and `nan` parse as f64 but are no number a reply means.
        let looks_numeric = t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
        t.parse::<f64>()
            .ok()
            .filter(|f| looks_numeric && f.is_finite())
            .map(Num::Float)
    }
}

impl std::ops::Neg for Num {
    type Output = Num;

    /// `-i64::MIN` has no integer: it becomes a float, as overflow does in `apply`.
    fn neg(self) -> Num {
        match self {
            Num::Int(i) => i.checked_neg().map_or(Num::Float(-(i as f64)), Num::Int),
            Num::Float(f) => Num::Float(-f),
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token<'a> {
    Num(&'a str),
    Ident(&'a str),
    Op(char),
    Open,
    Close,
    Comma,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits an expression into tokens. A name may hold `-` between letters or digits
/// (`first-name`), so subtraction between names is written with spaces (`a - b`).
fn tokens(e: &str) -> Result<Vec<Token<'_>>, TemplateError> {
    let b = e.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '+' | '-' | '*' | '/' | '%' => {
                out.push(Token::Op(c));
                i += 1;
            }
            '0'..='9' | '.' => {
                let start = i;
                while i < b.len() {
                    let d = b[i];
                    let exp_sign = matches!(d, b'+' | b'-') && matches!(b[i - 1], b'e' | b'E');
                    if d.is_ascii_alphanumeric() || d == b'.' || exp_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token::Num(&e[start..i]));
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < b.len() {
                    let d = b[i] as char;
                    let inner_dash = d == '-'
                        && b.get(i + 1).is_some_and(|&n| is_ident_char(n as char))
                        && i > start
                        && is_ident_char(b[i - 1] as char);
                    let dot = d == '.' && b.get(i + 1).is_some_and(|&n| is_ident_start(n as char));
                    if is_ident_char(d) || inner_dash || dot {
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token::Ident(&e[start..i]));
            }
            other => {
                return err(format!(
                    "unexpected `{other}` in `{e}`: an expression is a name, a function call, a \
                     number or arithmetic (+ - * / %) over them"
                ));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    at: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn sum(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.product()?;
        while let Some(Token::Op(c @ ('+' | '-'))) = self.peek() {
            let op = if *c == '+' { Op::Add } else { Op::Sub };
            self.at += 1;
            let right = self.product()?;
            left = binary(op, left, right)?;
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Expr, TemplateError> {
        let mut left = self.unary()?;
        while let Some(Token::Op(c @ ('*' | '/' | '%'))) = self.peek() {
            let op = match c {
                '*' => Op::Mul,
                '/' => Op::Div,
                _ => Op::Rem,
            };
            self.at += 1;
            let right = self.unary()?;
            left = binary(op, left, right)?;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, TemplateError> {
        if let Some(Token::Op('-')) = self.peek() {
            self.at += 1;
            let e = self.nested(Parser::unary)?;
            operand('-', &e)?;
            return Ok(match e {
                Expr::Int(i) => Expr::Int(-i),
                Expr::Float(f) => Expr::Float(-f),
                e => Expr::Neg(Box::new(e)),
            });
        }
        self.atom()
    }

    fn nested(
        &mut self,
        f: fn(&mut Parser<'a>) -> Result<Expr, TemplateError>,
    ) -> Result<Expr, TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(format!(
                "`{}` nests deeper than {MAX_DEPTH} levels",
                self.src
            ));
        }
        let e = f(self);
        self.depth -= 1;
        e
    }

    fn atom(&mut self) -> Result<Expr, TemplateError> {
        let src = self.src;
        match self.next() {
            Some(Token::Num(n)) => number_literal(n),
            Some(Token::Open) => {
                let e = self.nested(Parser::sum)?;
                match self.next() {
                    Some(Token::Close) => Ok(e),
                    _ => err(format!("expected `)` in `{src}`")),
                }
            }
            Some(Token::Ident("true")) => Ok(Expr::Bool(true)),
            Some(Token::Ident("false")) => Ok(Expr::Bool(false)),
            Some(Token::Ident(name)) if self.peek() == Some(&Token::Open) => {
                self.at += 1;
                let mut args = Vec::new();
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                } else {
                    loop {
                        args.push(self.nested(Parser::sum)?);
                        match self.next() {
                            Some(Token::Comma) => continue,
                            Some(Token::Close) => break,
                            _ => return err(format!("expected `,` or `)` in `{src}`")),
                        }
                    }
                }
                Ok(Expr::Call(call(name, &args)?))
            }
            Some(Token::Ident(name)) => Ok(Expr::Name(name.split('.').map(String::from).collect())),
            Some(t) => err(format!("unexpected {} in `{src}`", describe(&t))),
            None => err(format!("`{src}` ends where a value was expected")),
        }
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Num(n) => format!("`{n}`"),
        Token::Ident(n) => format!("`{n}`"),
        Token::Op(c) => format!("`{c}`"),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
    }
}

fn number_literal(n: &str) -> Result<Expr, TemplateError> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Expr::Int(i));
    }
    match n.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(Expr::Float(f)),
        _ => err(format!("`{n}` is not a number")),
    }
}

/// Refuses an operand arithmetic cannot take, whatever the names' values.
fn operand(op: char, e: &Expr) -> Result<(), TemplateError> {
    match e {
        Expr::Bool(b) => err(format!("`{op}` takes numbers, found `{b}`")),
        Expr::Call(c @ (Call::Uuid | Call::RandomString(_))) => err(format!(
            "`{op}` takes numbers, found {}, which is text",
            match c {
                Call::Uuid => "uuid()",
                _ => "randomString(n)",
            }
        )),
        _ => Ok(()),
    }
}

/// Builds `a op b`, folding literals so `{{ 60 * 1000 }}` costs nothing per request.
fn binary(op: Op, a: Expr, b: Expr) -> Result<Expr, TemplateError> {
    operand(op.symbol(), &a)?;
    operand(op.symbol(), &b)?;
    let lit = |e: &Expr| match e {
        Expr::Int(i) => Some(Num::Int(*i)),
        Expr::Float(f) => Some(Num::Float(*f)),
        _ => None,
    };
    if matches!(op, Op::Div | Op::Rem) && lit(&b).is_some_and(|n| n.as_f64() == 0.0) {
        return err(format!("`{}` by zero", op.symbol()));
    }
    Ok(match (lit(&a), lit(&b)) {
        (Some(x), Some(y)) => match x.apply(op, y) {
            Num::Int(i) => Expr::Int(i),
            Num::Float(f) => Expr::Float(f),
        },
        _ => Expr::Binary(op, Box::new(a), Box::new(b)),
    })
}

fn parse_expr(e: &str) -> Result<Expr, TemplateError> {
    if e.is_empty() {
        return err("empty `{{ }}`");
    }
    if e.len() > MAX_EXPR_LEN {
        return err(format!(
            "an expression is at most {MAX_EXPR_LEN} characters, found {}",
            e.len()
        ));
    }
    let mut p = Parser {
        src: e,
        toks: tokens(e)?,
        at: 0,
        depth: 0,
    };
    let expr = p.sum()?;
    match p.next() {
        None => Ok(expr),
        Some(t) => err(format!(
            "unexpected {} in `{e}`: write one name, call or arithmetic per `{{{{ }}}}`",
            describe(&t)
        )),
    }
}

/// A constant argument of `func`: arguments are fixed when the file loads.
fn constant(func: &str, a: &Expr) -> Result<Num, TemplateError> {
    match a {
        Expr::Int(i) => Ok(Num::Int(*i)),
        Expr::Float(f) => Ok(Num::Float(*f)),
        _ => err(format!(
            "`{func}` takes constant numbers as arguments, found an expression with names or calls"
        )),
    }
}

fn whole(func: &str, a: &Expr) -> Result<i64, TemplateError> {
    match constant(func, a)? {
        Num::Int(i) => Ok(i),
        Num::Float(f) => err(format!("`{func}` takes whole numbers, found `{f}`")),
    }
}

fn call(func: &str, args: &[Expr]) -> Result<Call, TemplateError> {
    Ok(match func {
        "random" => match args {
            [a, b] => {
                let (a, b) = (whole(func, a)?, whole(func, b)?);
                if a > b {
                    return err(format!(
                        "random({a}, {b}): the lower bound must not exceed the upper bound"
                    ));
                }
                Call::Random(a, b)
            }
            _ => return err("random takes two arguments: random(a, b)"),
        },
        "randomString" => match args {
            [n] => match whole(func, n)? {
                n if (1..=i64::from(MAX_RANDOM_STRING)).contains(&n) => {
                    Call::RandomString(n as u32)
                }
                n => {
                    return err(format!(
                        "randomString({n}): the length must be 1 to {MAX_RANDOM_STRING}"
                    ));
                }
            },
            _ => return err("randomString takes one argument: randomString(n)"),
        },
        "zipf" => match args {
            [n, s] => {
                let n = match constant(func, n)? {
                    Num::Int(n) if n >= 1 => n as u64,
                    other => {
                        return err(format!(
                            "zipf(n, s): n is a whole number of at least 1, found `{other}`"
                        ));
                    }
                };
                let s = constant(func, s)?.as_f64();
                if !(s > 0.0 && s <= 100.0) {
                    return err(format!(
                        "zipf(n, s): the exponent s must lie in (0, 100], found {s}"
                    ));
                }
                Call::Zipf(n, s)
            }
            _ => return err("zipf takes two arguments: zipf(n, s)"),
        },
        "gaussian" => match args {
            [m, sd] => {
                let (m, sd) = (constant(func, m)?.as_f64(), constant(func, sd)?.as_f64());
                if sd < 0.0 {
                    return err(format!(
                        "gaussian(mean, sd): sd cannot be negative, found {sd}"
                    ));
                }
                Call::Gaussian(m, sd)
            }
            _ => return err("gaussian takes two arguments: gaussian(mean, sd)"),
        },
        "uuid" | "now_ms" if !args.is_empty() => {
            return err(format!("{func}() takes no arguments"));
        }
        "uuid" => Call::Uuid,
        "now_ms" => Call::NowMs,
        other => {
            return err(format!(
                "unknown template function `{other}`; known functions: {}",
                FUNCTIONS.join(", ")
            ));
        }
    })
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

    fn one(src: &str) -> Expr {
        Template::parse(src).unwrap().single().unwrap().clone()
    }

    fn name(n: &str) -> Box<Expr> {
        Box::new(Expr::Name(n.split('.').map(String::from).collect()))
    }

    #[test]
    fn arithmetic_follows_precedence_and_folds_literals() {
        assert_eq!(one("{{ 1000 - 3 * 2 }}"), Expr::Int(994));
        assert_eq!(one("{{ (1 + 2) * 3 }}"), Expr::Int(9));
        assert_eq!(one("{{ 7 / 2 }}"), Expr::Int(3), "integers divide whole");
        assert_eq!(one("{{ 7.0 / 2 }}"), Expr::Float(3.5));
        assert_eq!(one("{{ -7 % 3 }}"), Expr::Int(-1));
        assert_eq!(one("{{ 60 * 60 * 1000 }}"), Expr::Int(3_600_000));
        assert_eq!(
            one("{{ 1000 - results.buy.ok }}"),
            Expr::Binary(Op::Sub, Box::new(Expr::Int(1000)), name("results.buy.ok"))
        );
        assert_eq!(
            one("{{ vu.id * 1000 + iteration }}"),
            Expr::Binary(
                Op::Add,
                Box::new(Expr::Binary(
                    Op::Mul,
                    name("vu.id"),
                    Box::new(Expr::Int(1000))
                )),
                name("iteration")
            )
        );
        assert_eq!(
            one("{{ now_ms() / 1000 }}"),
            Expr::Binary(
                Op::Div,
                Box::new(Expr::Call(Call::NowMs)),
                Box::new(Expr::Int(1000))
            )
        );
        assert_eq!(one("{{ -count }}"), Expr::Neg(name("count")));
        assert_eq!(
            one("{{ random(1, 10 * 10) }}"),
            Expr::Call(Call::Random(1, 100)),
            "constant arguments fold"
        );
        assert_eq!(
            one("{{ gaussian(-5, 0.5) }}"),
            Expr::Call(Call::Gaussian(-5.0, 0.5))
        );
        assert_eq!(one("{{ true }}"), Expr::Bool(true));
        assert_eq!(one("{{ 2.5e3 }}"), Expr::Float(2500.0));
    }

    #[test]
    fn a_dash_between_letters_is_part_of_a_name_and_spaced_is_subtraction() {
        assert_eq!(one("{{ first-name }}"), *name("first-name"));
        assert_eq!(
            one("{{ stock - 1 }}"),
            Expr::Binary(Op::Sub, name("stock"), Box::new(Expr::Int(1)))
        );
        assert_eq!(
            one("{{ iteration-1 }}"),
            *name("iteration-1"),
            "documented: write spaces around a minus between names and numbers"
        );
    }

    #[test]
    fn arithmetic_refuses_what_is_not_a_number_and_says_where() {
        for (bad, says) in [
            ("{{ 1 / 0 }}", "by zero"),
            ("{{ count % 0 }}", "by zero"),
            ("{{ uuid() + 1 }}", "uuid() + 1"),
            ("{{ randomString(3) * 2 }}", "text"),
            ("{{ true + 1 }}", "takes numbers"),
            ("{{ (1 + 2 }}", "expected `)`"),
            ("{{ 1 + }}", "ends where a value was expected"),
            ("{{ a b }}", "unexpected `b`"),
            ("{{ 1 $ 2 }}", "unexpected `$`"),
            ("{{ random(1, count) }}", "constant numbers"),
            ("{{ random(1.5, 3) }}", "whole numbers"),
            ("{{ 1.2.3 }}", "not a number"),
        ] {
            let e = Template::parse(bad).unwrap_err().0;
            assert!(
                e.contains(says) || (says == "uuid() + 1" && e.contains("uuid()")),
                "{bad}: {e}"
            );
        }
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(100), ")".repeat(100));
        assert!(
            Template::parse(&deep)
                .unwrap_err()
                .0
                .contains("nests deeper")
        );
    }

    #[test]
    fn one_expression_keeps_its_type_and_names_inside_arithmetic_are_numeric() {
        let ty = |src: &str| one(src).type_of(&builtin_type);
        assert_eq!(ty("{{ vu.id }}"), Type::Int);
        assert_eq!(ty("{{ now_ms() / 1000 }}"), Type::Int);
        assert_eq!(ty("{{ gaussian(1, 2) * 2 }}"), Type::Float);
        assert_eq!(ty("{{ token }}"), Type::Text);
        assert_eq!(ty("{{ count + 1 }}"), Type::Number);
        assert_eq!(ty("{{ false }}"), Type::Bool);
        assert_eq!(ty("{{ uuid() }}"), Type::Text);
        assert!(Template::parse("a{{ vu.id }}").unwrap().single().is_none());
        let t = Template::parse("{{ token }}/{{ count * 2 + vu.id }}").unwrap();
        let numeric: Vec<String> = t.numeric_names().iter().map(|n| n.join(".")).collect();
        assert_eq!(numeric, ["count", "vu.id"]);
        let all: Vec<String> = t.names().iter().map(|n| n.join(".")).collect();
        assert_eq!(all, ["token", "count", "vu.id"]);
    }

    #[test]
    fn integer_overflow_and_zero_divisors_become_floats_never_wrapped() {
        assert_eq!(
            Num::Int(i64::MAX).apply(Op::Add, Num::Int(1)),
            Num::Float(i64::MAX as f64 + 1.0)
        );
        assert!(
            matches!(Num::Int(1).apply(Op::Div, Num::Int(0)), Num::Float(f) if f.is_infinite())
        );
        assert_eq!(Num::parse(" 42 "), Some(Num::Int(42)));
        assert_eq!(Num::parse("-2.5"), Some(Num::Float(-2.5)));
        assert_eq!(Num::parse("nan"), None);
        assert_eq!(Num::parse("inf"), None);
        assert_eq!(Num::parse("12abc"), None);
        assert_eq!(Num::parse(""), None);
    }
}
