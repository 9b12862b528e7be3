//! Compiled templates: the api's parsed template resolved to slots once at load, rendered
//! per request straight into a reused buffer.
//! Hot path: `render` does no parsing, no map look-up and no allocation beyond buffer growth.

use std::io::Write;

use stampede_api::template::{Call, Expr, Part, Template};

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
    Data { set: usize, col: usize, esc: Escape },
    VuId,
    Iteration,
    Random(i64, i64),
    Uuid,
    NowMs,
    RandomString(usize),
    Zipf(Zipf),
    Gaussian(f64, f64),
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
                    let ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes())
                }
            }
        }
    }
}

fn resolve(segs: &[String], esc: Escape, names: &Names) -> Result<Piece, String> {
    let joined = segs.join(".");
    match joined.as_str() {
        "vu.id" => return Ok(Piece::VuId),
        "iteration" => return Ok(Piece::Iteration),
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

/// Compiles a JSON body whose strings may hold templates.
pub fn compile_json(v: &serde_json::Value, names: &Names) -> Result<Tpl, String> {
    let mut t = Tpl::default();
    json_into(v, names, &mut t)?;
    Ok(t)
}

/// Whether `s` is one expression whose value is always a number (`{{ vu.id }}`,
/// `{{ iteration }}`, `{{ random(…) }}`, `{{ zipf(…) }}`, `{{ gaussian(…) }}`, `{{ now_ms() }}`).
/// Names of variables, data and extracted values are text, so they stay strings.
fn is_one_number(s: &str) -> bool {
    let Ok(t) = Template::parse(s) else {
        return false;
    };
    match t.parts.as_slice() {
        [Part::Expr(Expr::Call(c))] => matches!(
            c,
            Call::Random(..) | Call::Zipf(..) | Call::Gaussian(..) | Call::NowMs
        ),
        [Part::Expr(Expr::Name(n))] => {
            let n: Vec<&str> = n.iter().map(String::as_str).collect();
            matches!(n.as_slice(), ["vu", "id"] | ["iteration"])
        }
        _ => false,
    }
}

fn json_into(v: &serde_json::Value, names: &Names, t: &mut Tpl) -> Result<(), String> {
    use serde_json::Value;
    match v {
        // A string that is exactly one numeric expression keeps its type: `"{{ now_ms() }}"`
        // is a JSON number, so a server or a `timestampPath` reads it as one.
        Value::String(s) if is_one_number(s) => t.append(&Tpl::compile(s, Escape::Raw, names)?),
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
