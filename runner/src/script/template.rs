//! Compiled templates: the api's parsed template resolved to slots once at load, rendered
//! per request straight into a reused buffer.
//! Hot path: `render` does no parsing, no map look-up and no allocation beyond buffer growth.

use std::io::Write;

use stampede_api::template::{self, Call, Expr, Num, Op, Part, Template, Type};

use crate::script::data::DataSet;
use crate::script::random::{Rng, Zipf};

/// How an inserted value is escaped for where it lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Inserted as is (raw bodies).
    Raw,
    /// In the request path: bytes that would break the request line (spaces, controls,
    /// non-ASCII, `"<>\\^`{|}#`) are percent-encoded; `/ ? & = %` pass through so a value
    /// can carry a path or query on purpose. Literal text is left as written.
    Path,
    /// Inside a JSON string.
    Json,
    /// A query-string value (form URL encoding).
    Query,
    /// A header value: line breaks become spaces so a value cannot inject a header.
    Header,
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Lit(Box<[u8]>),
    Var(usize, Escape),
    Data {
        set: usize,
        col: usize,
        esc: Escape,
    },
    VuId,
    Iteration,
    Random(i64, i64),
    Uuid,
    NowMs,
    RandomString(usize),
    Zipf(Zipf),
    Gaussian(f64, f64),
    /// Arithmetic, evaluated per render (literals were folded when the file was parsed).
    Eval(Box<Eval>),
}

/// An arithmetic expression over the user's values.
#[derive(Clone, Debug, PartialEq)]
enum Eval {
    Const(Num),
    VuId,
    Iteration,
    /// An extracted value or a data cell, read as a number when it renders.
    Var(usize),
    Data {
        set: usize,
        col: usize,
    },
    Random(i64, i64),
    Zipf(Zipf),
    Gaussian(f64, f64),
    NowMs,
    Neg(Box<Eval>),
    Bin(Op, Box<Eval>, Box<Eval>),
}

/// A text that does not read as a number (an extract not yet made, a data cell that is not
/// one) makes the whole result NaN: it renders `NaN`, which the server sees and refuses,
/// instead of a made-up 0.
const NOT_A_NUMBER: Num = Num::Float(f64::NAN);

impl Eval {
    fn num(&self, cx: &RenderCtx) -> Num {
        let text = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(Num::parse)
                .unwrap_or(NOT_A_NUMBER)
        };
        match self {
            Eval::Const(n) => *n,
            Eval::VuId => Num::Int(cx.vu_id as i64),
            Eval::Iteration => Num::Int(cx.iteration as i64),
            Eval::Var(i) => text(&cx.vars[*i]),
            Eval::Data { set, col } => text(cx.data[*set].value(cx.rows[*set], *col).as_bytes()),
            Eval::Random(a, b) => Num::Int(cx.rng.range(*a, *b)),
            Eval::Zipf(z) => Num::Int(z.sample(cx.rng) as i64),
            Eval::Gaussian(m, sd) => Num::Float(cx.rng.gaussian(*m, *sd)),
            Eval::NowMs => Num::Int(now_ms() as i64),
            Eval::Neg(e) => -e.num(cx),
            Eval::Bin(op, a, b) => a.num(cx).apply(*op, b.num(cx)),
        }
    }

    fn compile(e: &Expr, names: &Names) -> Result<Eval, String> {
        Ok(match e {
            Expr::Int(i) => Eval::Const(Num::Int(*i)),
            Expr::Float(f) => Eval::Const(Num::Float(*f)),
            Expr::Neg(e) => Eval::Neg(Box::new(Eval::compile(e, names)?)),
            Expr::Binary(op, a, b) => Eval::Bin(
                *op,
                Box::new(Eval::compile(a, names)?),
                Box::new(Eval::compile(b, names)?),
            ),
            Expr::Call(Call::Random(a, b)) => Eval::Random(*a, *b),
            Expr::Call(Call::Zipf(n, s)) => Eval::Zipf(Zipf::new(*n, *s)),
            Expr::Call(Call::Gaussian(m, sd)) => Eval::Gaussian(*m, *sd),
            Expr::Call(Call::NowMs) => Eval::NowMs,
            Expr::Name(segs) => match resolve(segs, Escape::Raw, names)? {
                Piece::VuId => Eval::VuId,
                Piece::Iteration => Eval::Iteration,
                Piece::Var(i, _) => Eval::Var(i),
                Piece::Data { set, col, .. } => Eval::Data { set, col },
                Piece::Lit(v) => Eval::Const(
                    std::str::from_utf8(&v)
                        .ok()
                        .and_then(Num::parse)
                        .ok_or_else(|| {
                            format!(
                                "`{}` is used in arithmetic but is not a number",
                                segs.join(".")
                            )
                        })?,
                ),
                _ => return Err(format!("`{}` cannot be used in arithmetic", segs.join("."))),
            },
            // The api refuses these inside arithmetic when it parses.
            Expr::Bool(_) | Expr::Call(Call::Uuid | Call::RandomString(_)) => {
                return Err("arithmetic takes numbers".into());
            }
        })
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn write_num(out: &mut Vec<u8>, n: Num) {
    match n {
        Num::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Num::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

/// A template ready to render.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tpl {
    pieces: Vec<Piece>,
}

/// Names a template can refer to, resolved to slot numbers.
#[derive(Debug, Default)]
pub struct Names {
    pub variables: Vec<(String, String)>,
    /// Extracted values: slot i holds `extracted[i]`.
    pub extracted: Vec<String>,
    pub data: Vec<DataSet>,
    /// `{{ run.id }}`: fixed for the run, so it is inlined as literal text.
    pub run_id: String,
}

/// Per-render values.
pub struct RenderCtx<'a> {
    pub vu_id: u64,
    pub iteration: u64,
    pub vars: &'a [Vec<u8>],
    /// Row chosen for each data set this iteration.
    pub rows: &'a [usize],
    pub data: &'a [DataSet],
    /// The user's random stream.
    pub rng: &'a Rng,
}

impl Tpl {
    pub fn literal(bytes: &[u8]) -> Tpl {
        let mut t = Tpl::default();
        t.push_lit(bytes);
        t
    }

    fn push_lit(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if let Some(Piece::Lit(prev)) = self.pieces.last_mut() {
            let mut v = prev.to_vec();
            v.extend_from_slice(b);
            *prev = v.into_boxed_slice();
        } else {
            self.pieces.push(Piece::Lit(b.into()));
        }
    }

    /// Appends another template.
    pub fn append(&mut self, other: &Tpl) {
        for p in &other.pieces {
            match p {
                Piece::Lit(b) => self.push_lit(b),
                other => self.pieces.push(other.clone()),
            }
        }
    }

    pub fn push_str(&mut self, s: &str) {
        self.push_lit(s.as_bytes());
    }

    /// Compiles `src`, escaping literal text and inserted values alike with `esc`.
    /// Names were checked by validation; a name that still fails to resolve is a bug there.
    pub fn compile(src: &str, esc: Escape, names: &Names) -> Result<Tpl, String> {
        let parsed = Template::parse(src).map_err(|e| e.0)?;
        let mut t = Tpl::default();
        for part in parsed.parts {
            match part {
                Part::Text(s) if esc == Escape::Path => t.push_lit(s.as_bytes()),
                Part::Text(s) => {
                    let mut buf = Vec::new();
                    escape_into(&mut buf, s.as_bytes(), esc);
                    t.push_lit(&buf);
                }
                Part::Expr(Expr::Call(Call::Random(a, b))) => t.pieces.push(Piece::Random(a, b)),
                Part::Expr(Expr::Call(Call::Uuid)) => t.pieces.push(Piece::Uuid),
                Part::Expr(Expr::Call(Call::NowMs)) => t.pieces.push(Piece::NowMs),
                Part::Expr(Expr::Call(Call::RandomString(n))) => {
                    t.pieces.push(Piece::RandomString(n as usize))
                }
                Part::Expr(Expr::Call(Call::Zipf(n, s))) => {
                    t.pieces.push(Piece::Zipf(Zipf::new(n, s)))
                }
                Part::Expr(Expr::Call(Call::Gaussian(m, sd))) => {
                    t.pieces.push(Piece::Gaussian(m, sd))
                }
                Part::Expr(Expr::Name(segs)) => t.pieces.push(resolve(&segs, esc, names)?),
                Part::Expr(Expr::Int(i)) => t.push_lit(itoa::Buffer::new().format(i).as_bytes()),
                Part::Expr(Expr::Float(f)) => t.push_lit(f.to_string().as_bytes()),
                Part::Expr(Expr::Bool(b)) => t.push_lit(if b { b"true" } else { b"false" }),
                Part::Expr(e @ (Expr::Neg(_) | Expr::Binary(..))) => t
                    .pieces
                    .push(Piece::Eval(Box::new(Eval::compile(&e, names)?))),
            }
        }
        Ok(t)
    }

    pub fn is_static(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Lit(_)))
    }

    /// Renders into `out` (appending).
    pub fn render(&self, out: &mut Vec<u8>, cx: &RenderCtx) {
        for p in &self.pieces {
            match p {
                Piece::Lit(b) => out.extend_from_slice(b),
                Piece::Var(i, esc) => escape_into(out, &cx.vars[*i], *esc),
                Piece::Data { set, col, esc } => {
                    let ds = &cx.data[*set];
                    escape_into(out, ds.value(cx.rows[*set], *col).as_bytes(), *esc)
                }
                Piece::VuId => {
                    out.extend_from_slice(itoa::Buffer::new().format(cx.vu_id).as_bytes())
                }
                Piece::Iteration => {
                    out.extend_from_slice(itoa::Buffer::new().format(cx.iteration).as_bytes())
                }
                Piece::Random(a, b) => out
                    .extend_from_slice(itoa::Buffer::new().format(cx.rng.range(*a, *b)).as_bytes()),
                Piece::RandomString(n) => cx.rng.string_into(out, *n),
                Piece::Zipf(z) => {
                    out.extend_from_slice(itoa::Buffer::new().format(z.sample(cx.rng)).as_bytes())
                }
                Piece::Gaussian(m, sd) => {
                    let _ = write!(out, "{}", cx.rng.gaussian(*m, *sd));
                }
                Piece::Uuid => {
                    let bits = (u128::from(cx.rng.u64()) << 64) | u128::from(cx.rng.u64());
                    let u = uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid();
                    let _ = write!(out, "{}", u.hyphenated());
                }
                Piece::NowMs => {
                    out.extend_from_slice(itoa::Buffer::new().format(now_ms()).as_bytes())
                }
                Piece::Eval(e) => write_num(out, e.num(cx)),
            }
        }
    }
}

fn resolve(segs: &[String], esc: Escape, names: &Names) -> Result<Piece, String> {
    let joined = segs.join(".");
    match joined.as_str() {
        "vu.id" => return Ok(Piece::VuId),
        "iteration" => return Ok(Piece::Iteration),
        "run.id" => {
            let mut buf = Vec::new();
            escape_into(&mut buf, names.run_id.as_bytes(), esc);
            return Ok(Piece::Lit(buf.into()));
        }
        _ => {}
    }
    if let [one] = segs {
        if let Some(i) = names.extracted.iter().position(|n| n == one) {
            return Ok(Piece::Var(i, esc));
        }
        if let Some((_, v)) = names.variables.iter().find(|(n, _)| n == one) {
            // Variables are constants: inline them as literal text.
            let mut buf = Vec::new();
            escape_into(&mut buf, v.as_bytes(), esc);
            return Ok(Piece::Lit(buf.into()));
        }
    }
    if let [set, col] = segs
        && let Some(si) = names.data.iter().position(|d| &d.name == set)
    {
        let ci = names.data[si]
            .column(col)
            .ok_or_else(|| format!("data set `{set}` has no column `{col}`"))?;
        return Ok(Piece::Data {
            set: si,
            col: ci,
            esc,
        });
    }
    Err(format!("unknown name `{joined}` in template"))
}

/// Appends `v` to `out`, escaped for `esc`.
pub fn escape_into(out: &mut Vec<u8>, v: &[u8], esc: Escape) {
    match esc {
        Escape::Raw => out.extend_from_slice(v),
        Escape::Path => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            for &b in v {
                if b <= b' ' || b >= 0x7f || b"\"<>\\^`{|}#".contains(&b) {
                    out.extend_from_slice(&[
                        b'%',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 15)],
                    ]);
                } else {
                    out.push(b);
                }
            }
        }
        Escape::Header => out.extend(
            v.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        ),
        Escape::Query => {
            for chunk in url::form_urlencoded::byte_serialize(v) {
                out.extend_from_slice(chunk.as_bytes());
            }
        }
        Escape::Json => {
            for &b in v {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0..=0x1f => {
                        let _ = write!(out, "\\u{b:04x}");
                    }
                    _ => out.push(b),
                }
            }
        }
    }
}

/// A value with its type: what a typed parameter (a SQL placeholder, a reconciliation
/// check) binds, where text rendering would lose whether `42` was a number.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(&'a [u8]),
}

/// A template whose value keeps its type: one numeric or boolean expression evaluates to
/// that, anything else renders as text.
#[derive(Clone, Debug, PartialEq)]
pub struct Typed {
    kind: TypedKind,
    ty: Type,
}

#[derive(Clone, Debug, PartialEq)]
enum TypedKind {
    Num(Eval),
    Bool(bool),
    Text(Tpl),
}

impl Typed {
    pub fn compile(src: &str, names: &Names) -> Result<Typed, String> {
        let parsed = Template::parse(src).map_err(|e| e.0)?;
        let ty = parsed
            .single()
            .map_or(Type::Text, |e| e.type_of(&template::builtin_type));
        let kind = match parsed.single() {
            Some(Expr::Bool(b)) => TypedKind::Bool(*b),
            Some(e) if ty.is_numeric() => TypedKind::Num(Eval::compile(e, names)?),
            _ => TypedKind::Text(Tpl::compile(src, Escape::Raw, names)?),
        };
        Ok(Typed { kind, ty })
    }

    /// The type every value of this template has (`Text` for text; `Number` for arithmetic
    /// over values read at run time, an integer when they all are).
    pub fn value_type(&self) -> Type {
        self.ty
    }

    /// Evaluates; text renders into `buf` (cleared first), which the value then borrows.
    pub fn eval<'b>(&self, cx: &RenderCtx, buf: &'b mut Vec<u8>) -> Value<'b> {
        match &self.kind {
            TypedKind::Num(e) => match e.num(cx) {
                Num::Int(i) => Value::Int(i),
                Num::Float(f) => Value::Float(f),
            },
            TypedKind::Bool(b) => Value::Bool(*b),
            TypedKind::Text(t) => {
                buf.clear();
                t.render(buf, cx);
                Value::Text(buf)
            }
        }
    }
}

/// Compiles a JSON body whose strings may hold templates.
pub fn compile_json(v: &serde_json::Value, names: &Names) -> Result<Tpl, String> {
    let mut t = Tpl::default();
    json_into(v, names, &mut t)?;
    Ok(t)
}

/// Whether `s` is one expression whose value is a number or a boolean, so it lands in JSON
/// unquoted: `"{{ now_ms() }}"`, `"{{ vu.id * 1000 + iteration }}"`, `"{{ count + 1 }}"`,
/// `"{{ true }}"`. A name alone is text (an extracted value, a data cell, a variable), so it
/// stays a string.
fn is_typed(s: &str) -> bool {
    Template::parse(s).is_ok_and(|t| {
        t.single()
            .is_some_and(|e| e.type_of(&template::builtin_type) != Type::Text)
    })
}

fn json_into(v: &serde_json::Value, names: &Names, t: &mut Tpl) -> Result<(), String> {
    use serde_json::Value;
    match v {
        // A string that is exactly one numeric expression keeps its type: `"{{ now_ms() }}"`
        // is a JSON number, so a server or a `timestampPath` reads it as one.
        Value::String(s) if is_typed(s) => t.append(&Tpl::compile(s, Escape::Raw, names)?),
        Value::String(s) => {
            t.push_str("\"");
            t.append(&Tpl::compile(s, Escape::Json, names)?);
            t.push_str("\"");
        }
        Value::Array(a) => {
            t.push_str("[");
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    t.push_str(",");
                }
                json_into(x, names, t)?;
            }
            t.push_str("]");
        }
        Value::Object(o) => {
            t.push_str("{");
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    t.push_str(",");
                }
                t.push_str(&serde_json::to_string(k).map_err(|e| e.to_string())?);
                t.push_str(":");
                json_into(x, names, t)?;
            }
            t.push_str("}");
        }
        other => t.push_str(&other.to_string()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_api::scenario::Pick;

    fn names() -> Names {
        Names {
            variables: vec![("shop".into(), "a\"b".into())],
            extracted: vec!["token".into()],
            data: vec![DataSet {
                name: "users".into(),
                columns: vec!["name".into()],
                rows: vec![vec!["ann lee".into()], vec!["bob".into()]],
                pick: Pick::Sequential,
            }],
            run_id: "20261208-015224-a1b2c3".into(),
        }
    }

    fn render(t: &Tpl, vars: &[Vec<u8>]) -> String {
        let n = names();
        let mut out = Vec::new();
        t.render(
            &mut out,
            &RenderCtx {
                vu_id: 7,
                iteration: 3,
                vars,
                rows: &[0],
                data: &n.data,
                rng: &Rng::for_user(1, 7),
            },
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_json_string_of_one_numeric_expression_is_a_number() {
        let n = names();
        let body = serde_json::json!({
            "at": "{{ now_ms() }}", "vu": "{{ vu.id }}", "n": "{{ random(3, 3) }}",
            "id": "u{{ vu.id }}", "user": "{{ users.name }}"
        });
        let t = compile_json(&body, &n).unwrap();
        let v: serde_json::Value = serde_json::from_str(&render(&t, &[vec![]])).unwrap();
        assert!(v["at"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(v["vu"], 7);
        assert_eq!(v["n"], 3);
        assert_eq!(v["id"], "u7");
        assert_eq!(v["user"], "ann lee");
    }

    #[test]
    fn random_functions_draw_from_the_users_seeded_stream() {
        let n = names();
        let t = Tpl::compile(
            "{{ random(1, 6) }} {{ randomString(12) }} {{ zipf(1000, 1.1) }} {{ gaussian(10, 2) }} {{ uuid() }}",
            Escape::Raw,
            &n,
        )
        .unwrap();
        let draw = |seed: u64, vu: u64| {
            let rng = Rng::for_user(seed, vu);
            let mut out = Vec::new();
            for _ in 0..3 {
                t.render(
                    &mut out,
                    &RenderCtx {
                        vu_id: vu,
                        iteration: 0,
                        vars: &[],
                        rows: &[0],
                        data: &n.data,
                        rng: &rng,
                    },
                );
                out.push(b'|');
            }
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            draw(42, 1),
            draw(42, 1),
            "same seed, same user: same values"
        );
        assert_ne!(draw(42, 1), draw(42, 2));
        assert_ne!(draw(42, 1), draw(43, 1));
        let one = draw(42, 1);
        let first = one.split('|').next().unwrap();
        let fields: Vec<&str> = first.split(' ').collect();
        assert!(
            (1..=6).contains(&fields[0].parse::<i64>().unwrap()),
            "{first}"
        );
        assert_eq!(fields[1].len(), 12);
        assert!((1..=1000).contains(&fields[2].parse::<u64>().unwrap()));
        assert!(fields[3].parse::<f64>().unwrap().is_finite());
        assert_eq!(fields[4].len(), 36);
    }

    #[test]
    fn renders_names_builtins_and_escapes_by_place() {
        let n = names();
        let t = Tpl::compile(
            "/u/{{vu.id}}/{{ iteration }}/{{users.name}}/{{token}}",
            Escape::Raw,
            &n,
        )
        .unwrap();
        assert_eq!(render(&t, &[b"T1".to_vec()]), "/u/7/3/ann lee/T1");
        let r = Tpl::compile("/runs/{{ run.id }}", Escape::Path, &n).unwrap();
        assert!(
            r.is_static(),
            "the run id is fixed for the run: inlined once"
        );
        assert_eq!(render(&r, &[vec![]]), "/runs/20261208-015224-a1b2c3");
        let p = Tpl::compile("/a b/{{users.name}}", Escape::Path, &n).unwrap();
        assert_eq!(
            render(&p, &[vec![]]),
            "/a b/ann%20lee",
            "values are encoded, literal text is not"
        );
        let q = Tpl::compile("{{users.name}}&x", Escape::Query, &n).unwrap();
        assert_eq!(render(&q, &[vec![]]), "ann+lee%26x");
        let j = compile_json(
            &serde_json::json!({"s": "{{shop}}", "n": 1, "l": [true]}),
            &n,
        )
        .unwrap();
        let body = render(&j, &[vec![]]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["s"],
            "a\"b"
        );
        assert!(
            j.is_static(),
            "variables are inlined, so this body renders once"
        );
    }

    fn cx<'a>(n: &'a Names, vars: &'a [Vec<u8>], rng: &'a Rng) -> RenderCtx<'a> {
        RenderCtx {
            vu_id: 7,
            iteration: 3,
            vars,
            rows: &[0],
            data: &n.data,
            rng,
        }
    }

    #[test]
    fn arithmetic_renders_numbers_and_text_that_is_no_number_renders_nan() {
        let n = names();
        let rng = Rng::for_user(1, 7);
        let show = |src: &str, var: &[u8]| {
            let t = Tpl::compile(src, Escape::Raw, &n).unwrap();
            let mut out = Vec::new();
            t.render(&mut out, &cx(&n, &[var.to_vec()], &rng));
            String::from_utf8(out).unwrap()
        };
        assert_eq!(show("id-{{ vu.id * 1000 + iteration }}", b""), "id-7003");
        assert_eq!(show("{{ 1000 - token }}", b"42"), "958");
        assert_eq!(show("{{ token * 0.5 }}", b"3"), "1.5");
        assert_eq!(show("{{ token / 2 }}", b"7"), "3", "integers divide whole");
        assert_eq!(show("{{ -token }}", b"2.5"), "-2.5");
        assert_eq!(show("{{ (iteration + 1) % 2 }}", b""), "0");
        assert_eq!(
            show("{{ 60 * 1000 }} {{ true }} {{ 2.5 }}", b""),
            "60000 true 2.5"
        );
        assert_eq!(show("{{ token + 1 }}", b"abc"), "NaN");
        assert_eq!(show("{{ token + 1 }}", b""), "NaN", "not yet extracted");
        assert_eq!(
            show("{{ 5 / (iteration - 3) }}", b""),
            "inf",
            "a zero divisor met at run time"
        );
        let secs: u64 = show("{{ now_ms() / 1000 }}", b"").parse().unwrap();
        assert!(secs > 1_700_000_000 && secs < 1_700_000_000_000, "{secs}");
        let r: i64 = show("{{ random(1, 6) * 10 }}", b"").parse().unwrap();
        assert!(r % 10 == 0 && (10..=60).contains(&r));
        let err = Tpl::compile("{{ shop + 1 }}", Escape::Raw, &n).unwrap_err();
        assert!(
            err.contains("`shop` is used in arithmetic but is not a number"),
            "{err}"
        );
    }

    #[test]
    fn a_template_of_one_expression_evaluates_to_its_type() {
        let n = names();
        let rng = Rng::for_user(1, 7);
        let vars = [b"41".to_vec()];
        let value = |src: &str| {
            let t = Typed::compile(src, &n).unwrap();
            let mut buf = Vec::new();
            let v = t.eval(&cx(&n, &vars, &rng), &mut buf);
            (t.value_type(), format!("{v:?}"))
        };
        assert_eq!(value("{{ vu.id }}"), (Type::Int, "Int(7)".into()));
        assert_eq!(value("{{ 2 * 21 }}"), (Type::Int, "Int(42)".into()));
        assert_eq!(value("{{ token + 1 }}"), (Type::Number, "Int(42)".into()));
        assert_eq!(
            value("{{ gaussian(1, 0) }}"),
            (Type::Float, "Float(1.0)".into())
        );
        assert_eq!(value("{{ false }}"), (Type::Bool, "Bool(false)".into()));
        assert_eq!(
            value("{{ token }}"),
            (Type::Text, format!("{:?}", Value::Text(b"41")))
        );
        assert_eq!(
            value("u{{ vu.id }}"),
            (Type::Text, format!("{:?}", Value::Text(b"u7")))
        );
        let body = compile_json(
            &serde_json::json!({"a": "{{ token * 2 }}", "b": "{{ true }}", "c": "{{ token }}"}),
            &n,
        )
        .unwrap();
        let mut out = Vec::new();
        body.render(&mut out, &cx(&n, &vars, &rng));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, serde_json::json!({"a": 82, "b": true, "c": "41"}));
    }

    #[test]
    fn functions_render_in_range() {
        let n = names();
        let t = Tpl::compile("{{ random(5, 6) }}", Escape::Raw, &n).unwrap();
        for _ in 0..50 {
            let v: i64 = render(&t, &[vec![]]).parse().unwrap();
            assert!((5..=6).contains(&v));
        }
        let u = Tpl::compile("{{ uuid() }}", Escape::Raw, &n).unwrap();
        assert_eq!(render(&u, &[vec![]]).len(), 36);
    }
}
