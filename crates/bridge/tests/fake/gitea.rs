//! A fake of the Gitea 1.26.0 API v1, as much of it as the bridge calls,
//! answering with the answers recorded from the real Gitea 1.26.0
//! (`tests/recorded/gitea/`) patched from its state: one organisation with
//! one repository, its pull requests, comments (with attachments), commit
//! statuses, the organisation's members and the users' tokens.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{deliver, json_answer, query, rebase, recorded, Call, Fault, Faults};

/// The endpoints of the fake Gitea, for [`Fault`]s and the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /version`.
    Version,
    /// `GET /user`.
    User,
    /// `GET /repos/{o}/{r}`.
    Repo,
    /// `GET /repos/{o}/{r}/tags`.
    Tags,
    /// `GET /repos/{o}/{r}/pulls/{n}`.
    Pull,
    /// `GET /repos/{o}/{r}/issues/comments?since=`.
    RepoComments,
    /// `GET /repos/{o}/{r}/issues/{n}/comments`.
    PrComments,
    /// `POST /repos/{o}/{r}/issues/{n}/comments`.
    CommentCreate,
    /// `PATCH /repos/{o}/{r}/issues/comments/{id}`.
    CommentEdit,
    /// `DELETE /repos/{o}/{r}/issues/comments/{id}`.
    CommentDelete,
    /// `GET /repos/{o}/{r}/issues/comments/{id}/assets`.
    Assets,
    /// `POST /repos/{o}/{r}/issues/comments/{id}/assets`.
    AssetCreate,
    /// `DELETE /repos/{o}/{r}/issues/comments/{id}/assets/{aid}`.
    AssetDelete,
    /// `GET /orgs/{org}/members/{user}`.
    OrgMember,
    /// `POST /repos/{o}/{r}/statuses/{sha}`.
    StatusCreate,
    /// `GET /repos/{o}/{r}/commits/{sha}/statuses`.
    Statuses,
}

/// A pull request of the fake's repository.
#[derive(Debug, Clone)]
pub struct Pull {
    /// Its number.
    pub number: u64,
    /// Its head commit.
    pub head_sha: String,
    /// Its head branch.
    pub head_ref: String,
    /// The branch it merges into.
    pub base_ref: String,
    /// `open` or `closed`.
    pub state: String,
}

/// A comment attachment.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Its id.
    pub id: u64,
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: usize,
    /// Its uuid (its download URL's last part).
    pub uuid: String,
    /// When it was attached.
    pub created_at: DateTime<Utc>,
}

/// A comment on a pull request.
#[derive(Debug, Clone)]
pub struct Comment {
    /// Its id.
    pub id: u64,
    /// The pull request.
    pub pr: u64,
    /// Its author's login.
    pub user: String,
    /// Its Markdown.
    pub body: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub updated_at: DateTime<Utc>,
    /// Its attachments.
    pub assets: Vec<Asset>,
    /// How many times it was edited through the API.
    pub edits: u32,
}

/// A commit status.
#[derive(Debug, Clone)]
pub struct Status {
    /// Its id.
    pub id: u64,
    /// The commit.
    pub sha: String,
    /// `pending`, `success`, `failure`, `error`.
    pub state: String,
    /// Where to look.
    pub target_url: String,
    /// One line.
    pub description: String,
    /// E.g. `cc-ci/testme`.
    pub context: String,
    /// When it was set.
    pub created_at: DateTime<Utc>,
}

/// What the fake Gitea holds.
#[derive(Debug, Default)]
pub struct Forge {
    /// Members of the organisation.
    pub members: BTreeSet<String>,
    /// Token to login.
    pub tokens: HashMap<String, String>,
    /// Pull requests by number.
    pub pulls: BTreeMap<u64, Pull>,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
    /// Commit statuses, oldest first.
    pub statuses: Vec<Status>,
    next_id: u64,
}

impl Forge {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The recorded answers the fake patches.
struct Templates {
    /// The recorded Gitea's base URL (`http://127.0.0.1:<port>`).
    base: String,
    repo_full: String,
    version: Value,
    user: Value,
    user_401: Value,
    repo: Value,
    repo_404: Value,
    tags: Value,
    pull: Value,
    comment: Value,
    other_user: Value,
    asset: Value,
    status: Value,
    not_found: Value,
    not_a_member: Value,
    member_redirect: super::Recorded,
    webhook: super::Recorded,
}

impl Templates {
    fn load() -> Templates {
        let repo = recorded("gitea/repo").body;
        let repo_full = repo["full_name"].as_str().unwrap().to_string();
        let html = repo["html_url"].as_str().unwrap();
        let base = html.strip_suffix(&format!("/{repo_full}")).unwrap().to_string();
        let comments = recorded("gitea/issue_comments_since").body;
        Templates {
            base,
            repo_full,
            version: recorded("gitea/version").body,
            user: recorded("gitea/user").body,
            user_401: recorded("gitea/user_401_without_token").body,
            repo,
            repo_404: recorded("gitea/repo_404").body,
            tags: recorded("gitea/tags").body,
            pull: recorded("gitea/pull").body,
            comment: recorded("gitea/comment_create").body,
            other_user: comments[0]["user"].clone(),
            asset: recorded("gitea/comment_asset_create").body,
            status: recorded("gitea/status_create").body,
            not_found: recorded("gitea/comment_edit_404").body,
            not_a_member: recorded("gitea/org_member_404").body,
            member_redirect: recorded("gitea/org_member_asked_by_a_non_member"),
            webhook: recorded("webhook/issue_comment"),
        }
    }
}

/// `u` with `old`'s login replaced by `new` wherever it appears.
fn patch_login(mut u: Value, old: &str, new: &str) -> Value {
    if !old.is_empty() {
        rebase(&mut u, old, new);
    }
    u
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A fake Gitea 1.26.0 (see the module doc), serving on 127.0.0.1.
pub struct FakeGitea {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The organisation.
    pub org: String,
    /// The repository (`org/name`).
    pub repo: String,
    /// The bot's login (the recorded administrator's).
    pub bot: String,
    /// The bot's token.
    pub bot_token: String,
    /// Faults scripted per endpoint.
    pub faults: Faults<Endpoint>,
    state: Mutex<Forge>,
    calls: Mutex<Vec<Call<Endpoint>>>,
    t: Templates,
    /// Its clock minus the real one, seconds (a Gitea host whose clock is
    /// off): its timestamps and the `Date` of its answers follow it.
    skew_s: std::sync::atomic::AtomicI64,
}

impl FakeGitea {
    /// Starts a fake with the recorded organisation and repository, the
    /// bot (a member, with a token) and no pull request yet.
    pub async fn start() -> Arc<FakeGitea> {
        let t = Templates::load();
        let (org, _) = t.repo_full.split_once('/').unwrap();
        let bot = t.user["login"].as_str().unwrap().to_string();
        let bot_token = format!("fake-token-{}", uuid::Uuid::new_v4().simple());
        let mut state = Forge {
            next_id: 100,
            ..Forge::default()
        };
        state.members.insert(bot.clone());
        state.tokens.insert(bot_token.clone(), bot.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let g = Arc::new(FakeGitea {
            url,
            org: org.to_string(),
            repo: t.repo_full.clone(),
            bot,
            bot_token,
            faults: Faults::new(),
            state: Mutex::new(state),
            calls: Mutex::new(Vec::new()),
            t,
            skew_s: std::sync::atomic::AtomicI64::new(0),
        });
        let router = router(g.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        g
    }

    /// Sets its clock `seconds` off the real one (negative: behind).
    pub fn set_clock_skew(&self, seconds: i64) {
        self.skew_s.store(seconds, std::sync::atomic::Ordering::Relaxed);
    }

    /// Its clock now.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.skew_s.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Reads or changes the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut Forge) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// A user with a token (not a member).
    pub fn user(&self, login: &str) -> String {
        let token = format!("fake-token-{login}-{}", uuid::Uuid::new_v4().simple());
        self.with(|s| s.tokens.insert(token.clone(), login.into()));
        token
    }

    /// Makes `login` a member of the organisation.
    pub fn add_member(&self, login: &str) {
        self.with(|s| s.members.insert(login.into()));
    }

    /// Opens pull request from branch `branch` at `head_sha` into `main`; its number.
    pub fn open_pr(&self, branch: &str, head_sha: &str) -> u64 {
        self.with(|s| {
            let number = s.id();
            s.pulls.insert(
                number,
                Pull {
                    number,
                    head_sha: head_sha.into(),
                    head_ref: branch.into(),
                    base_ref: "main".into(),
                    state: "open".into(),
                },
            );
            number
        })
    }

    /// A new head for the pull request (a push).
    pub fn push(&self, pr: u64, head_sha: &str) {
        self.with(|s| s.pulls.get_mut(&pr).unwrap().head_sha = head_sha.into());
    }

    /// `author` comments `body` on pull request `pr` (now); the comment's id.
    pub fn comment(&self, pr: u64, author: &str, body: &str) -> u64 {
        self.with(|s| {
            let id = s.id();
            let now = self.now();
            s.comments.push(Comment {
                id,
                pr,
                user: author.into(),
                body: body.into(),
                created_at: now,
                updated_at: now,
                assets: Vec::new(),
                edits: 0,
            });
            id
        })
    }

    /// Deletes a comment (someone removed it in the web UI).
    pub fn delete_comment(&self, id: u64) {
        self.with(|s| s.comments.retain(|c| c.id != id));
    }

    /// The comments of a pull request, oldest first.
    pub fn comments(&self, pr: u64) -> Vec<Comment> {
        self.with(|s| s.comments.iter().filter(|c| c.pr == pr).cloned().collect())
    }

    /// The bot's comments on a pull request.
    pub fn bot_comments(&self, pr: u64) -> Vec<Comment> {
        self.comments(pr).into_iter().filter(|c| c.user == self.bot).collect()
    }

    /// The statuses of a commit, oldest first.
    pub fn statuses(&self, sha: &str) -> Vec<Status> {
        self.with(|s| s.statuses.iter().filter(|x| x.sha == sha).cloned().collect())
    }

    /// The newest status of `context` on a commit.
    pub fn status(&self, sha: &str, context: &str) -> Option<Status> {
        self.statuses(sha).into_iter().rev().find(|s| s.context == context)
    }

    /// The calls received so far.
    pub fn calls(&self) -> Vec<Call<Endpoint>> {
        self.calls.lock().unwrap().clone()
    }

    /// How many calls of `endpoint` were received.
    pub fn count(&self, endpoint: Endpoint) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.endpoint == endpoint)
            .count()
    }

    /// The next `times` calls of `endpoint` meet `fault`.
    pub fn fail(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        self.faults.push(endpoint, fault, times);
    }

    fn rebased(&self, mut v: Value) -> Value {
        rebase(&mut v, &self.t.base, &self.url);
        v
    }

    /// `GET /user` of `login`: the recorded answer (the bot's), patched
    /// for another user.
    pub fn me_json(&self, login: &str) -> Value {
        let mut u = self.t.user.clone();
        if login != self.bot {
            u = patch_login(u, &self.bot, login);
        }
        self.rebased(u)
    }

    /// A user as comments and statuses show one (the recorded bot's, or
    /// the recorded maintainer's with the login and id patched).
    pub fn poster_json(&self, login: &str) -> Value {
        let u = if login == self.bot {
            self.t.comment["user"].clone()
        } else {
            let old = self.t.other_user["login"].as_str().unwrap_or("").to_string();
            let mut u = patch_login(self.t.other_user.clone(), &old, login);
            u["id"] = json!(1000 + login.bytes().map(u64::from).sum::<u64>());
            u
        };
        self.rebased(u)
    }

    /// A comment as the API shows one.
    pub fn comment_json(&self, c: &Comment) -> Value {
        let mut v = self.t.comment.clone();
        let pr_url = format!("{}/{}/pulls/{}", self.url, self.repo, c.pr);
        v["id"] = json!(c.id);
        v["body"] = json!(c.body);
        v["user"] = self.poster_json(&c.user);
        v["created_at"] = json!(ts(&c.created_at));
        v["updated_at"] = json!(ts(&c.updated_at));
        v["html_url"] = json!(format!("{pr_url}#issuecomment-{}", c.id));
        v["pull_request_url"] = json!(pr_url);
        v["issue_url"] = json!("");
        v["assets"] = Value::Array(c.assets.iter().map(|a| self.asset_json(a)).collect());
        let mut v = self.rebased(v);
        v["body"] = json!(c.body);
        v
    }

    /// An attachment as the API shows one.
    pub fn asset_json(&self, a: &Asset) -> Value {
        let mut v = self.t.asset.clone();
        v["id"] = json!(a.id);
        v["name"] = json!(a.name);
        v["size"] = json!(a.size);
        v["uuid"] = json!(a.uuid);
        v["created_at"] = json!(ts(&a.created_at));
        v["browser_download_url"] = json!(format!("{}/attachments/{}", self.url, a.uuid));
        v
    }

    /// A pull request as the API shows one.
    pub fn pull_json(&self, p: &Pull) -> Value {
        let mut v = self.rebased(self.t.pull.clone());
        let old_n = v["number"].as_u64().unwrap_or(0);
        let old_head = v["head"]["sha"].as_str().unwrap_or("").to_string();
        let old_branch = v["head"]["ref"].as_str().unwrap_or("").to_string();
        let pulls_old = format!("/pulls/{old_n}");
        let pulls_new = format!("/pulls/{}", p.number);
        rebase(&mut v, &pulls_old, &pulls_new);
        if !old_head.is_empty() {
            rebase(&mut v, &old_head, &p.head_sha);
        }
        v["number"] = json!(p.number);
        v["id"] = json!(p.number);
        v["state"] = json!(p.state);
        v["head"]["sha"] = json!(p.head_sha);
        v["head"]["ref"] = json!(p.head_ref);
        v["head"]["label"] = json!(p.head_ref);
        v["base"]["ref"] = json!(p.base_ref);
        v["base"]["label"] = json!(p.base_ref);
        v["title"] = json!(format!("Test {}", p.head_ref));
        if !old_branch.is_empty() && old_branch != p.head_ref {
            rebase(&mut v, &format!("/{old_branch}"), &format!("/{}", p.head_ref));
        }
        v
    }

    /// A commit status as the API shows one.
    pub fn status_json(&self, s: &Status) -> Value {
        let mut v = self.rebased(self.t.status.clone());
        v["id"] = json!(s.id);
        if v.get("status").is_some() {
            v["status"] = json!(s.state);
        }
        if v.get("state").is_some() {
            v["state"] = json!(s.state);
        }
        v["target_url"] = json!(s.target_url);
        v["description"] = json!(s.description);
        v["context"] = json!(s.context);
        v["created_at"] = json!(ts(&s.created_at));
        v["updated_at"] = json!(ts(&s.created_at));
        v["url"] = json!(format!("{}/api/v1/repos/{}/statuses/{}", self.url, self.repo, s.sha));
        v["creator"] = self.poster_json(&self.bot);
        v
    }

    /// The repository as the API shows it.
    pub fn repo_json(&self) -> Value {
        self.rebased(self.t.repo.clone())
    }

    /// Gitea's delivery of comment `id` to a webhook (event headers and
    /// payload): the recorded delivery with the comment, pull request and
    /// repository patched.
    pub fn webhook_delivery(&self, id: u64) -> (Value, Value) {
        let c = self.with(|s| s.comments.iter().find(|c| c.id == id).cloned()).unwrap();
        let p = self.with(|s| s.pulls.get(&c.pr).cloned()).unwrap();
        let mut body = self.rebased(self.t.webhook.body.clone());
        let comment = self.comment_json(&c);
        for (k, v) in comment.as_object().unwrap() {
            if body["comment"].get(k).is_some() {
                body["comment"][k] = v.clone();
            }
        }
        body["issue"]["number"] = json!(p.number);
        body["issue"]["id"] = json!(p.number);
        body["issue"]["title"] = json!(format!("Test {}", p.head_ref));
        body["sender"] = self.poster_json(&c.user);
        (self.t.webhook.headers.clone(), body)
    }

    fn not_found(&self) -> Response {
        json_answer(404, self.rebased(self.t.not_found.clone()))
    }

    /// Logs the call, checks the token; `Err` is the answer when the token
    /// is missing or unknown, or when a scripted [`Fault::Status`] is met.
    fn begin(
        &self,
        endpoint: Endpoint,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(String, Option<Fault>), Box<Response>> {
        let fault = self.faults.take(endpoint);
        self.calls.lock().unwrap().push(Call {
            endpoint,
            method: method.to_string(),
            uri: uri.to_string(),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
            fault: fault.clone(),
        });
        if let Some(Fault::Status(code)) = fault {
            let mut v = self.rebased(self.t.not_found.clone());
            v["message"] = json!(format!("fake Gitea: scripted {code}"));
            return Err(Box::new(json_answer(code, v)));
        }
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("token "))
            .unwrap_or("");
        let login = self.with(|s| s.tokens.get(token).cloned());
        match login {
            Some(l) => Ok((l, fault)),
            None if endpoint == Endpoint::Version => Ok((String::new(), fault)),
            None => Err(Box::new(json_answer(401, self.t.user_401.clone()))),
        }
    }

    fn our_repo(&self, owner: &str, name: &str) -> bool {
        format!("{owner}/{name}") == self.repo
    }
}

type G = State<Arc<FakeGitea>>;

/// Each handler: the call logged and authorised, the state changed, the
/// answer delivered under the call's fault.
macro_rules! begin {
    ($g:expr, $ep:expr, $m:expr, $u:expr, $h:expr, $b:expr) => {
        match $g.begin($ep, &$m, &$u, &$h, &$b) {
            Ok(x) => x,
            Err(answer) => return *answer,
        }
    };
}

fn router(g: Arc<FakeGitea>) -> Router {
    Router::new()
        .route("/api/v1/version", get(version))
        .route("/api/v1/user", get(user))
        .route("/api/v1/repos/{o}/{r}", get(repo))
        .route("/api/v1/repos/{o}/{r}/tags", get(tags))
        .route("/api/v1/repos/{o}/{r}/pulls/{n}", get(pull))
        .route("/api/v1/repos/{o}/{r}/issues/comments", get(repo_comments))
        .route(
            "/api/v1/repos/{o}/{r}/issues/comments/{id}",
            patch(edit_comment).delete(delete_comment),
        )
        .route(
            "/api/v1/repos/{o}/{r}/issues/comments/{id}/assets",
            get(assets).post(create_asset),
        )
        .route(
            "/api/v1/repos/{o}/{r}/issues/comments/{id}/assets/{aid}",
            delete(delete_asset),
        )
        .route(
            "/api/v1/repos/{o}/{r}/issues/{n}/comments",
            get(pr_comments).post(create_comment),
        )
        .route("/api/v1/orgs/{org}/members/{user}", get(org_member))
        .route("/api/v1/repos/{o}/{r}/statuses/{sha}", post(create_status))
        .route("/api/v1/repos/{o}/{r}/commits/{sha}/statuses", get(statuses))
        .layer(axum::middleware::map_response_with_state(g.clone(), dated))
        .with_state(g)
}

/// Every answer carries the fake's clock in its `Date` header, as Gitea's
/// (Go's net/http) carry the host's.
async fn dated(State(g): G, mut r: Response) -> Response {
    let date = g.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = axum::http::HeaderValue::from_str(&date) {
        r.headers_mut().insert(axum::http::header::DATE, v);
    }
    r
}

async fn version(State(g): G, m: Method, u: Uri, h: HeaderMap) -> Response {
    let (_, f) = begin!(g, Endpoint::Version, m, u, h, []);
    deliver(f, json_answer(200, g.t.version.clone())).await
}

async fn user(State(g): G, m: Method, u: Uri, h: HeaderMap) -> Response {
    let (login, f) = begin!(g, Endpoint::User, m, u, h, []);
    deliver(f, json_answer(200, g.me_json(&login))).await
}

async fn repo(State(g): G, Path((o, r)): Path<(String, String)>, m: Method, u: Uri, h: HeaderMap) -> Response {
    let (_, f) = begin!(g, Endpoint::Repo, m, u, h, []);
    let a = if g.our_repo(&o, &r) {
        json_answer(200, g.repo_json())
    } else {
        json_answer(404, g.t.repo_404.clone())
    };
    deliver(f, a).await
}

async fn tags(State(g): G, Path((o, r)): Path<(String, String)>, m: Method, u: Uri, h: HeaderMap) -> Response {
    let (_, f) = begin!(g, Endpoint::Tags, m, u, h, []);
    let a = if g.our_repo(&o, &r) {
        json_answer(200, g.rebased(g.t.tags.clone()))
    } else {
        json_answer(404, g.t.repo_404.clone())
    };
    deliver(f, a).await
}

async fn pull(State(g): G, Path((o, r, n)): Path<(String, String, u64)>, m: Method, u: Uri, h: HeaderMap) -> Response {
    let (_, f) = begin!(g, Endpoint::Pull, m, u, h, []);
    let p = g.with(|s| s.pulls.get(&n).cloned());
    let a = match p {
        Some(p) if g.our_repo(&o, &r) => json_answer(200, g.pull_json(&p)),
        _ => g.not_found(),
    };
    deliver(f, a).await
}

async fn repo_comments(State(g): G, Path((o, r)): Path<(String, String)>, m: Method, u: Uri, h: HeaderMap) -> Response {
    let (_, f) = begin!(g, Endpoint::RepoComments, m, u, h, []);
    if !g.our_repo(&o, &r) {
        return deliver(f, json_answer(404, g.t.repo_404.clone())).await;
    }
    let q = query(&u);
    let since = q
        .get("since")
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50).clamp(1, 50);
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    // Gitea compares `since` with updated_unix, in whole seconds.
    let list: Vec<Comment> = g.with(|s| {
        s.comments
            .iter()
            .filter(|c| since.is_none_or(|t| c.updated_at.timestamp() >= t.timestamp()))
            .skip((page - 1) * limit)
            .take(limit)
            .cloned()
            .collect()
    });
    let v = Value::Array(list.iter().map(|c| g.comment_json(c)).collect());
    deliver(f, json_answer(200, v)).await
}

async fn pr_comments(
    State(g): G,
    Path((o, r, n)): Path<(String, String, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
) -> Response {
    let (_, f) = begin!(g, Endpoint::PrComments, m, u, h, []);
    if !g.our_repo(&o, &r) || g.with(|s| !s.pulls.contains_key(&n)) {
        return deliver(f, g.not_found()).await;
    }
    let v = Value::Array(g.comments(n).iter().map(|c| g.comment_json(c)).collect());
    deliver(f, json_answer(200, v)).await
}

async fn create_comment(
    State(g): G,
    Path((o, r, n)): Path<(String, String, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    let (login, f) = begin!(g, Endpoint::CommentCreate, m, u, h, b);
    let body: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let Some(text) = body["body"].as_str() else {
        return deliver(f, json_answer(422, json!({"message": "body is required"}))).await;
    };
    if !g.our_repo(&o, &r) || g.with(|s| !s.pulls.contains_key(&n)) {
        return deliver(f, g.not_found()).await;
    }
    let id = g.comment(n, &login, text);
    let c = g.with(|s| s.comments.iter().find(|c| c.id == id).cloned()).unwrap();
    deliver(f, json_answer(201, g.comment_json(&c))).await
}

async fn edit_comment(
    State(g): G,
    Path((_o, _r, id)): Path<(String, String, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    let (login, f) = begin!(g, Endpoint::CommentEdit, m, u, h, b);
    let body: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let text = body["body"].as_str().unwrap_or("").to_string();
    let edited = g.with(|s| {
        let c = s.comments.iter_mut().find(|c| c.id == id)?;
        if c.user != login {
            return None;
        }
        c.body = text;
        c.updated_at = g.now();
        c.edits += 1;
        Some(c.clone())
    });
    let a = match edited {
        Some(c) => json_answer(200, g.comment_json(&c)),
        None => g.not_found(),
    };
    deliver(f, a).await
}

async fn delete_comment(
    State(g): G,
    Path((_o, _r, id)): Path<(String, String, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
) -> Response {
    let (_, f) = begin!(g, Endpoint::CommentDelete, m, u, h, []);
    let existed = g.with(|s| {
        let n = s.comments.len();
        s.comments.retain(|c| c.id != id);
        n != s.comments.len()
    });
    let a = if existed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        g.not_found()
    };
    deliver(f, a).await
}

async fn assets(
    State(g): G,
    Path((_o, _r, id)): Path<(String, String, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
) -> Response {
    let (_, f) = begin!(g, Endpoint::Assets, m, u, h, []);
    let c = g.with(|s| s.comments.iter().find(|c| c.id == id).cloned());
    let a = match c {
        Some(c) => json_answer(200, Value::Array(c.assets.iter().map(|a| g.asset_json(a)).collect())),
        None => g.not_found(),
    };
    deliver(f, a).await
}

async fn create_asset(
    State(g): G,
    Path((_o, _r, id)): Path<(String, String, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    let (_, f) = begin!(g, Endpoint::AssetCreate, m, u, h, []);
    let multipart = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let body = String::from_utf8_lossy(&b);
    if !multipart || !body.contains("name=\"attachment\"") {
        return deliver(f, json_answer(422, json!({"message": "no attachment field"}))).await;
    }
    let name = query(&u).get("name").cloned().unwrap_or_else(|| "attachment".into());
    let asset = g.with(|s| {
        let aid = s.id();
        let c = s.comments.iter_mut().find(|c| c.id == id)?;
        let a = Asset {
            id: aid,
            name,
            size: b.len(),
            uuid: uuid::Uuid::new_v4().to_string(),
            created_at: g.now(),
        };
        c.assets.push(a.clone());
        Some(a)
    });
    let a = match asset {
        Some(a) => json_answer(201, g.asset_json(&a)),
        None => g.not_found(),
    };
    deliver(f, a).await
}

async fn delete_asset(
    State(g): G,
    Path((_o, _r, id, aid)): Path<(String, String, u64, u64)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
) -> Response {
    let (_, f) = begin!(g, Endpoint::AssetDelete, m, u, h, []);
    let removed = g.with(|s| {
        let c = s.comments.iter_mut().find(|c| c.id == id)?;
        let n = c.assets.len();
        c.assets.retain(|a| a.id != aid);
        (n != c.assets.len()).then_some(())
    });
    let a = match removed {
        Some(()) => StatusCode::NO_CONTENT.into_response(),
        None => g.not_found(),
    };
    deliver(f, a).await
}

async fn org_member(
    State(g): G,
    Path((org, login)): Path<(String, String)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
) -> Response {
    let (asker, f) = begin!(g, Endpoint::OrgMember, m, u, h, []);
    let (asker_member, member) = g.with(|s| (s.members.contains(&asker), s.members.contains(&login)));
    let a = if org != g.org {
        g.not_found()
    } else if !asker_member {
        // Gitea sends a non-member to the public-members check.
        let r = &g.t.member_redirect;
        let mut location = r.headers["location"].as_str().unwrap_or("").to_string();
        if let Some(i) = location.rfind('/') {
            location = format!("{}/{login}", &location[..i]);
        }
        let code = StatusCode::from_u16(r.status).unwrap();
        let text = r
            .body
            .as_str()
            .unwrap_or("")
            .replace("/maintainer", &format!("/{login}"));
        (
            code,
            [
                ("location", location),
                ("content-type", "text/html; charset=utf-8".into()),
            ],
            text,
        )
            .into_response()
    } else if member {
        StatusCode::NO_CONTENT.into_response()
    } else {
        json_answer(404, g.rebased(g.t.not_a_member.clone()))
    };
    deliver(f, a).await
}

async fn create_status(
    State(g): G,
    Path((o, r, sha)): Path<(String, String, String)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
    b: Bytes,
) -> Response {
    let (_, f) = begin!(g, Endpoint::StatusCreate, m, u, h, b);
    if !g.our_repo(&o, &r) {
        return deliver(f, g.not_found()).await;
    }
    let body: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    let state = body["state"].as_str().unwrap_or("").to_string();
    if !["pending", "success", "error", "failure", "warning"].contains(&state.as_str()) {
        return deliver(
            f,
            json_answer(422, json!({"message": format!("invalid state {state:?}")})),
        )
        .await;
    }
    let s = g.with(|st| {
        let s = Status {
            id: st.id(),
            sha: sha.clone(),
            state,
            target_url: body["target_url"].as_str().unwrap_or("").into(),
            description: body["description"].as_str().unwrap_or("").into(),
            context: body["context"].as_str().unwrap_or("default").into(),
            created_at: g.now(),
        };
        st.statuses.push(s.clone());
        s
    });
    deliver(f, json_answer(201, g.status_json(&s))).await
}

async fn statuses(
    State(g): G,
    Path((_o, _r, sha)): Path<(String, String, String)>,
    m: Method,
    u: Uri,
    h: HeaderMap,
) -> Response {
    let (_, f) = begin!(g, Endpoint::Statuses, m, u, h, []);
    let list: Vec<Value> = g.statuses(&sha).iter().rev().map(|s| g.status_json(s)).collect();
    deliver(f, json_answer(200, Value::Array(list))).await
}
