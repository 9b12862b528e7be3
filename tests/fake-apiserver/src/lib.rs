//! An in-process, stateful fake Kubernetes API server, served to the real `kube::Client`
//! through a tower service, so controller tests run the real `Controller` without a cluster
//! (none can be installed on the build machines).
//!
//! Generic over resources: paths `/api/v1/…` and `/apis/{group}/{version}/…`, namespaced or
//! listed across namespaces. What it does: list (label and field selectors), watch (JSON lines,
//! replaying the event log after the requested resourceVersion; subscription taken under the
//! same lock as the snapshot so no event is lost), get, create (uid, resourceVersion,
//! generation, creationTimestamp, generateName, 409 AlreadyExists), replace (409 on a stale
//! resourceVersion), merge / JSON / strategic-merge (as merge) / server-side-apply (as
//! merge-or-create; on the status subresource it replaces the status, as for one manager owning
//! every status field) patches, a status subresource (generation moves only with spec; main writes
//! keep status, status writes keep everything else), no-op writes that bump nothing and emit
//! nothing, finalizers and deletionTimestamp, owner-reference cascading deletion, and
//! Kubernetes `Status` error bodies.
//!
//! Its gaps, on purpose: no field ownership (apply is a merge, or a status replacement), no schema validation or
//! defaulting, no paging (`limit`/`continue` ignored), no admission, no pod lifecycle (tests
//! play the kubelet by patching pod status), no resourceVersion expiry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tower::BoxError;

pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Where an object lives: its collection (`api/v1/pods`, `apis/stampede.dev/v1alpha1/loadtests`),
/// namespace (empty for cluster-scoped) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    collection: String,
    namespace: String,
    name: String,
}

/// A write to an object's status subresource, as it arrived.
#[derive(Clone, Debug)]
pub struct StatusWrite {
    pub at: std::time::Instant,
    pub collection: String,
    pub name: String,
    pub method: String,
    pub content_type: String,
    pub body: Value,
}

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    key: Key,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Event>,
    /// Every write to a status subresource, oldest first: how often a controller writes.
    status_writes: Vec<StatusWrite>,
    /// Collections whose creates are refused, with the HTTP code and message (a quota or an
    /// admission webhook saying no).
    refusals: BTreeMap<String, (u16, String)>,
}

/// The server. Clone it freely: clones share state.
#[derive(Clone)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self::new()
    }
}

/// A parsed request path.
#[derive(Debug)]
struct Target {
    collection: String,
    /// `None`: across all namespaces (list/watch only).
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (plural, None, false),
        [plural, name] => (plural, Some(name.to_string()), false),
        [plural, name, "status"] => (plural, Some(name.to_string()), true),
        _ => return None,
    };
    Some(Target {
        collection: format!("{prefix}/{plural}"),
        namespace,
        name,
        status,
    })
}

fn status_body(code: StatusCode, reason: &str, message: String) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    })
}

fn respond(code: StatusCode, body: &Value) -> Response<ResponseBody> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("static response parts are valid")
}

fn not_found(t: &Target, name: &str) -> Response<ResponseBody> {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", t.collection),
    )
}

fn error(code: StatusCode, reason: &str, message: impl Into<String>) -> Response<ResponseBody> {
    respond(code, &status_body(code, reason, message.into()))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn meta(o: &Value) -> &Value {
    &o["metadata"]
}

fn rv_of(o: &Value) -> Option<u64> {
    meta(o)["resourceVersion"].as_str()?.parse().ok()
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_part(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// An equality-based label selector (`a=b,c!=d,e,!f`) or field selector over metadata.
fn matches_selectors(o: &Value, labels: Option<&str>, fields: Option<&str>) -> bool {
    let label = |k: &str| meta(o)["labels"][k].as_str().map(str::to_string);
    let field = |k: &str| -> Option<String> {
        match k {
            "metadata.name" => meta(o)["name"].as_str().map(str::to_string),
            "metadata.namespace" => meta(o)["namespace"].as_str().map(str::to_string),
            other => {
                let mut v = o;
                for part in other.split('.') {
                    v = &v[part];
                }
                v.as_str().map(str::to_string)
            }
        }
    };
    let check = |sel: Option<&str>, get: &dyn Fn(&str) -> Option<String>| {
        sel.unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .all(|term| {
                if let Some((k, v)) = term.split_once("!=") {
                    get(k.trim()).as_deref() != Some(v.trim())
                } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('='))
                {
                    get(k.trim()).as_deref() == Some(v.trim())
                } else if let Some(k) = term.strip_prefix('!') {
                    get(k.trim()).is_none()
                } else {
                    get(term).is_some()
                }
            })
    };
    check(labels, &label) && check(fields, &field)
}

/// JSON Patch as the API server applies it: a `test` for `null` passes on a missing path
/// (kube's finalizer helper relies on that; the json-patch crate would fail it).
fn apply_json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let mut ops = ops.clone();
    if let Some(list) = ops.as_array_mut() {
        let current = doc.clone();
        list.retain(|op| {
            !(op["op"] == "test"
                && op["value"].is_null()
                && op["path"]
                    .as_str()
                    .is_some_and(|p| current.pointer(p).is_none()))
        });
    }
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| e.to_string())?;
    json_patch::patch(doc, &patch).map_err(|e| e.to_string())
}

impl FakeApiServer {
    pub fn new() -> FakeApiServer {
        let (events, _) = broadcast::channel(4096);
        FakeApiServer {
            // An empty store still lists at resourceVersion 1 (clients need a non-empty one),
            // so the first write must come after it, or a watch from that list misses it.
            state: Arc::new(Mutex::new(State {
                rv: 1,
                ..State::default()
            })),
            events,
        }
    }

    /// A client talking to this server, defaulting to namespace `default`.
    pub fn client(&self) -> kube::Client {
        let server = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let server = server.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await?;
                Ok::<_, BoxError>(server.handle(parts.method, parts.uri, parts.headers, bytes))
            }
        });
        kube::Client::new(svc, "default")
    }

    /// From now on, creating objects in `collection` (e.g. `api/v1/pods`) fails with `code` and
    /// `message`, as under an exhausted quota; `None` lifts it.
    pub fn refuse_creates(&self, collection: &str, refusal: Option<(u16, &str)>) {
        let mut st = self.lock();
        match refusal {
            Some((code, message)) => {
                st.refusals
                    .insert(collection.into(), (code, message.into()));
            }
            None => {
                st.refusals.remove(collection);
            }
        }
    }

    /// Every write to the status of object `name` in `collection` so far, oldest first.
    pub fn status_writes(&self, collection: &str, name: &str) -> Vec<StatusWrite> {
        self.lock()
            .status_writes
            .iter()
            .filter(|w| w.collection == collection && w.name == name)
            .cloned()
            .collect()
    }

    /// Every stored object of a collection (e.g. `api/v1/pods`) in a namespace.
    pub fn objects(&self, collection: &str, namespace: &str) -> Vec<Value> {
        let st = self.lock();
        st.objects
            .iter()
            .filter(|(k, _)| k.collection == collection && k.namespace == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(
        &self,
        method: Method,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Response<ResponseBody> {
        let Some(t) = parse_path(uri.path()) else {
            return error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route for {}", uri.path()),
            );
        };
        let query: BTreeMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!("body is not JSON: {e}"),
                    );
                }
            }
        };
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if t.status && (method == Method::PATCH || method == Method::PUT) {
            let write = StatusWrite {
                at: std::time::Instant::now(),
                collection: t.collection.clone(),
                name: t.name.clone().unwrap_or_default(),
                method: method.to_string(),
                content_type: content_type.clone(),
                body: body.clone(),
            };
            self.lock().status_writes.push(write);
        }
        match (method, t.name.is_some()) {
            (Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                self.watch(&t, &query)
            }
            (Method::GET, false) => self.list(&t, &query),
            (Method::GET, true) => self.get(&t),
            (Method::POST, false) => self.create(&t, body),
            (Method::PUT, true) => self.replace(&t, body),
            (Method::PATCH, true) => self.patch(&t, &content_type, body),
            (Method::DELETE, true) => self.delete(&t),
            (m, _) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{m} on {}", uri.path()),
            ),
        }
    }

    fn key(t: &Target, name: &str) -> Key {
        Key {
            collection: t.collection.clone(),
            namespace: t.namespace.clone().unwrap_or_default(),
            name: name.to_string(),
        }
    }

    fn list(&self, t: &Target, q: &BTreeMap<String, String>) -> Response<ResponseBody> {
        let st = self.lock();
        let items: Vec<Value> = st
            .objects
            .iter()
            .filter(|(k, _)| {
                k.collection == t.collection
                    && t.namespace.as_ref().is_none_or(|ns| *ns == k.namespace)
            })
            .filter(|(_, o)| {
                matches_selectors(
                    o,
                    q.get("labelSelector").map(String::as_str),
                    q.get("fieldSelector").map(String::as_str),
                )
            })
            .map(|(_, o)| o.clone())
            .collect();
        respond(
            StatusCode::OK,
            &json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": st.rv.max(1).to_string() }, "items": items }),
        )
    }

    fn watch(&self, t: &Target, q: &BTreeMap<String, String>) -> Response<ResponseBody> {
        let since: u64 = q
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290u64);
        let labels = q.get("labelSelector").cloned();
        let fields = q.get("fieldSelector").cloned();
        let collection = t.collection.clone();
        let namespace = t.namespace.clone();
        let wanted = move |e: &Event| {
            e.key.collection == collection
                && namespace.as_ref().is_none_or(|ns| *ns == e.key.namespace)
                && matches_selectors(&e.object, labels.as_deref(), fields.as_deref())
        };
        // Snapshot and subscription under one lock: nothing between them is missed.
        let (backlog, rx) = {
            let st = self.lock();
            let backlog: Vec<Event> = if since == 0 {
                st.objects
                    .iter()
                    .map(|(k, o)| Event {
                        rv: rv_of(o).unwrap_or(0),
                        key: k.clone(),
                        kind: "ADDED",
                        object: o.clone(),
                    })
                    .filter(|e| wanted(e))
                    .collect()
            } else {
                st.log
                    .iter()
                    .filter(|e| e.rv > since && wanted(e))
                    .cloned()
                    .collect()
            };
            (backlog, self.events.subscribe())
        };
        let last = backlog.last().map(|e| e.rv).unwrap_or(since);
        let line = |e: Event| {
            Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(format!(
                "{}\n",
                json!({ "type": e.kind, "object": e.object })
            ))))
        };
        let live = tokio_stream::wrappers::BroadcastStream::new(rx)
            .filter_map(move |r| {
                let keep = match r {
                    Ok(e) if e.rv > last && wanted(&e) => Some(e),
                    _ => None,
                };
                futures::future::ready(keep)
            })
            .take_until(tokio::time::sleep(Duration::from_secs(timeout)));
        let stream = futures::stream::iter(backlog).chain(live).map(line);
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed_unsync())
            .expect("static response parts are valid")
    }

    fn get(&self, t: &Target) -> Response<ResponseBody> {
        let name = t.name.as_deref().unwrap_or_default();
        match self.lock().objects.get(&Self::key(t, name)) {
            Some(o) => respond(StatusCode::OK, o),
            None => not_found(t, name),
        }
    }

    /// Stores `object` under `key` as a new revision and logs the event. Returns the stored object.
    fn commit(
        st: &mut State,
        events: &broadcast::Sender<Event>,
        key: Key,
        mut object: Value,
        kind: &'static str,
    ) -> Value {
        st.rv += 1;
        object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let e = Event {
            rv: st.rv,
            key: key.clone(),
            kind,
            object: object.clone(),
        };
        if kind == "DELETED" {
            st.objects.remove(&key);
        } else {
            st.objects.insert(key, object.clone());
        }
        st.log.push(e.clone());
        let _ = events.send(e);
        object
    }

    fn create(&self, t: &Target, mut body: Value) -> Response<ResponseBody> {
        if !body.is_object() {
            return error(StatusCode::BAD_REQUEST, "BadRequest", "expected an object");
        }
        let mut st = self.lock();
        if let Some((code, message)) = st.refusals.get(&t.collection) {
            let code = StatusCode::from_u16(*code).unwrap_or(StatusCode::FORBIDDEN);
            return error(code, "Forbidden", message);
        }
        let mut name = meta(&body)["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            let Some(prefix) = meta(&body)["generateName"].as_str() else {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name or metadata.generateName is required",
                );
            };
            name = format!("{prefix}{:05x}", (st.uid + 1) * 7919 % 0xfffff);
        }
        let key = Self::key(t, &name);
        if st.objects.contains_key(&key) {
            return error(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", t.collection),
            );
        }
        st.uid += 1;
        let m = &mut body["metadata"];
        m["name"] = json!(name);
        if let Some(ns) = &t.namespace {
            m["namespace"] = json!(ns);
        }
        m["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", st.uid));
        m["generation"] = json!(1);
        m["creationTimestamp"] = json!(now_rfc3339());
        let stored = Self::commit(&mut st, &self.events, key, body, "ADDED");
        respond(StatusCode::CREATED, &stored)
    }

    /// Writes `new` over the stored `key` as the API server would for a main or status write.
    fn write(
        &self,
        st: &mut State,
        key: Key,
        old: &Value,
        mut new: Value,
        status_write: bool,
    ) -> Value {
        if status_write {
            // Only status changes through the status subresource.
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else {
            // The main resource keeps the stored status.
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            // Fields the server owns.
            for f in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "namespace",
                "name",
            ] {
                match old["metadata"].get(f) {
                    Some(v) => new["metadata"][f] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(f);
                        }
                    }
                }
            }
            if spec_part(&new) != spec_part(old) {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
                new["metadata"]["generation"] = json!(g + 1);
            }
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == *old {
            // A no-op write bumps nothing and tells no watcher.
            return new;
        }
        let finalizing = new["metadata"]["deletionTimestamp"].is_string()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if finalizing {
            let gone = Self::commit(st, &self.events, key, new, "DELETED");
            self.collect_garbage(st, &gone);
            return gone;
        }
        Self::commit(st, &self.events, key, new, "MODIFIED")
    }

    fn replace(&self, t: &Target, body: Value) -> Response<ResponseBody> {
        let name = t.name.as_deref().unwrap_or_default();
        let key = Self::key(t, name);
        let mut st = self.lock();
        let Some(old) = st.objects.get(&key).cloned() else {
            return not_found(t, name);
        };
        if let Some(rv) = rv_of(&body)
            && Some(rv) != rv_of(&old)
        {
            return error(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    t.collection
                ),
            );
        }
        let stored = self.write(&mut st, key, &old, body, t.status);
        respond(StatusCode::OK, &stored)
    }

    fn patch(&self, t: &Target, content_type: &str, body: Value) -> Response<ResponseBody> {
        let name = t.name.as_deref().unwrap_or_default();
        let key = Self::key(t, name);
        let mut st = self.lock();
        let old = match st.objects.get(&key).cloned() {
            Some(o) => o,
            None if content_type.starts_with("application/apply-patch") && !t.status => {
                drop(st);
                let mut body = body;
                body["metadata"]["name"] = json!(name);
                return self.create(t, body);
            }
            None => return not_found(t, name),
        };
        let mut new = old.clone();
        if content_type.starts_with("application/json-patch") {
            if let Err(e) = apply_json_patch(&mut new, &body) {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the JSON patch failed: {e}"),
                );
            }
        } else if content_type.starts_with("application/apply-patch") && t.status {
            // Apply to the status subresource: the status becomes what was applied, as when
            // one field manager (the operator) owns every status field.
            new["status"] = body.get("status").cloned().unwrap_or(Value::Null);
        } else {
            // Merge, strategic merge and apply are all taken as an RFC 7386 merge here.
            json_patch::merge(&mut new, &body);
        }
        let stored = self.write(&mut st, key, &old, new, t.status);
        respond(StatusCode::OK, &stored)
    }

    fn delete(&self, t: &Target) -> Response<ResponseBody> {
        let name = t.name.as_deref().unwrap_or_default();
        let key = Self::key(t, name);
        let mut st = self.lock();
        let Some(old) = st.objects.get(&key).cloned() else {
            return not_found(t, name);
        };
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old["metadata"]["deletionTimestamp"].is_string() {
                return respond(StatusCode::OK, &old);
            }
            let mut marked = old.clone();
            marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            let stored = Self::commit(&mut st, &self.events, key, marked, "MODIFIED");
            return respond(StatusCode::OK, &stored);
        }
        let gone = Self::commit(&mut st, &self.events, key, old, "DELETED");
        self.collect_garbage(&mut st, &gone);
        respond(
            StatusCode::OK,
            &json!({ "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success", "details": { "name": name, "uid": gone["metadata"]["uid"] } }),
        )
    }

    /// Deletes (through finalizers, like the garbage collector) every object that `owner` owned.
    fn collect_garbage(&self, st: &mut State, owner: &Value) {
        let Some(uid) = owner["metadata"]["uid"].as_str() else {
            return;
        };
        let owned: Vec<(Key, Value)> = st
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, o) in owned {
            if o["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
            {
                if !o["metadata"]["deletionTimestamp"].is_string() {
                    let mut marked = o;
                    marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                    Self::commit(st, &self.events, key, marked, "MODIFIED");
                }
            } else {
                let gone = Self::commit(st, &self.events, key, o, "DELETED");
                self.collect_garbage(st, &gone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collection_namespace_and_subresource() {
        let t = parse_path("/apis/stampede.dev/v1alpha1/namespaces/ns/loadtests/a/status").unwrap();
        assert_eq!(t.collection, "apis/stampede.dev/v1alpha1/loadtests");
        assert_eq!(
            (t.namespace.as_deref(), t.name.as_deref(), t.status),
            (Some("ns"), Some("a"), true)
        );
        let t = parse_path("/api/v1/pods").unwrap();
        assert_eq!(
            (t.collection.as_str(), t.namespace, t.name),
            ("api/v1/pods", None, None)
        );
    }

    #[test]
    fn selectors_follow_equality_semantics() {
        let o = json!({ "metadata": { "name": "p", "labels": { "app": "x", "tier": "web" } } });
        assert!(matches_selectors(
            &o,
            Some("app=x,tier"),
            Some("metadata.name=p")
        ));
        assert!(!matches_selectors(&o, Some("app!=x"), None));
        assert!(matches_selectors(&o, Some("!missing"), None));
        assert!(!matches_selectors(&o, None, Some("metadata.name=q")));
    }

    #[test]
    fn a_json_patch_null_test_passes_on_a_missing_path() {
        let mut doc = json!({ "metadata": {} });
        let ops = json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": ["f"] }
        ]);
        apply_json_patch(&mut doc, &ops).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
    }
}
