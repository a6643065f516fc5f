//! `docs/enroll-recipe.md`, followed to the letter on real parts: a Gitea
//! 1.26.0 (`scripts/gitea`), a Buildbot master and worker running cc-ci's
//! own master.cfg (`scripts/buildbot`), the bridge binary, and the build
//! running the real `ccci test` on the swarm behind Traefik.
//!
//! The test reads the page: its numbered step headings, and each block
//! marked `<!-- enroll-test: NAME -->` (a `curl` call's method, path and JSON
//! body; the TOML and Nix snippets). It sends and writes them as written,
//! with the page's placeholders (`<org>`, `<recipe>`, `<bot>`, `<team id>`,
//! `https://<bridge>`, `<webhook secret>` ...) filled in. A page changed
//! without the test, or the reverse, fails here.
//!
//! The bridge runs before the recipe is enrolled (another recipe enrolled
//! at installation), is restarted with the page's poll list, and must then
//! take a member's `!testme` through the page's webhook (polling is set to
//! once an hour, so only the webhook can bring it), run it with the page's
//! settings and approval, and report as the bot whose rights are exactly
//! the page's: a token with its four scopes, a team with its two units.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::forge::{free_port, wait_for, Bridge, Buildbot, Gitea, User, RUN};
use test_support::Component;

/// The organisation, as `hosts/cc-ci/configuration.nix` names it.
const ORG: &str = "coop-cloud";
/// The recipe enrolled: a fixture recipe, its repository named as it.
const RECIPE: &str = "static-site";
/// The bot's login.
const BOT: &str = "cc-ci-bot";
/// The recipe's own test, shipped in its repository (page step 5).
const OWN_TEST: &str = "front-page-from-the-recipe";

fn ready() -> bool {
    test_support::need(Component::Gitea)
        && test_support::need(Component::Buildbot)
        && test_support::need(Component::FixtureImages)
        && test_support::need(Component::TraefikStack)
        && test_support::need(Component::Chromium)
}

fn ccci() -> PathBuf {
    let p = test_support::workspace().join("target/debug/ccci");
    assert!(p.is_file(), "{} is not built: cargo build -p ccci", p.display());
    p
}

/// The page, and what the test reads of it.
struct Page {
    path: PathBuf,
    text: String,
}

/// A `curl` call of the page.
#[derive(Debug)]
struct Call {
    method: String,
    /// After `$GITEA`, e.g. `/api/v1/orgs/<org>/teams`.
    path: String,
    /// The `-d '...'` body, as written.
    body: Option<String>,
}

impl Page {
    fn load() -> Page {
        let path = test_support::workspace().join("docs/enroll-recipe.md");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Page { path, text }
    }

    /// The `## <n>. ...` headings, in order.
    fn steps(&self) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("## "))
            .filter(|h| h.split_once(". ").is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
            .map(str::to_string)
            .collect()
    }

    /// The fenced block after `<!-- enroll-test: name -->`.
    fn block(&self, name: &str) -> String {
        let marker = format!("<!-- enroll-test: {name} -->");
        let at = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("{}: no block marked {marker}", self.path.display()));
        let mut lines = self.text[at + marker.len()..]
            .lines()
            .skip_while(|l| l.trim().is_empty());
        let fence = lines.next().unwrap_or("");
        assert!(
            fence.starts_with("```"),
            "{}: {marker} is not followed by a fenced block",
            self.path.display()
        );
        let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
        body.join("\n")
    }

    /// The `curl` call of the block `name`.
    fn call(&self, name: &str) -> Call {
        let b = self.block(name);
        let after = |s: &str, what: &str| -> String {
            let i = b
                .find(s)
                .unwrap_or_else(|| panic!("{}: block {name}: no {what}:\n{b}", self.path.display()));
            b[i + s.len()..].to_string()
        };
        let method = after("-X ", "-X METHOD").split_whitespace().next().unwrap().to_string();
        let url = after("\"$GITEA", "\"$GITEA/...\" URL");
        let path = url[..url.find('"').expect("the URL's closing quote")].to_string();
        let body = b.contains("-d '").then(|| {
            let d = after("-d '", "-d body");
            d[..d.find('\'').expect("the body's closing quote")].to_string()
        });
        Call { method, path, body }
    }
}

/// `text` with each placeholder replaced by its value.
fn fill(text: &str, subs: &[(&str, &str)]) -> String {
    let mut t = text.to_string();
    for (k, v) in subs {
        t = t.replace(k, v);
    }
    t
}

impl Call {
    /// Its path and body with `subs` filled in.
    fn filled(&self, subs: &[(&str, &str)]) -> (String, Option<Value>) {
        let path = fill(&self.path, subs);
        let body = self.body.as_ref().map(|b| {
            let t = fill(b, subs);
            serde_json::from_str(&t).unwrap_or_else(|e| panic!("the page's body of {path} is not JSON ({e}):\n{t}"))
        });
        assert!(!path.contains('<'), "a placeholder left in {path}");
        (path, body)
    }

    /// Sends it as `user`; the answer, which must be a success.
    fn send(&self, gitea: &Gitea, user: &User, subs: &[(&str, &str)]) -> Value {
        let (path, body) = self.filled(subs);
        let api = path
            .strip_prefix("/api/v1")
            .unwrap_or_else(|| panic!("{path} is not under /api/v1"));
        if let Some(b) = &body {
            assert!(!b.to_string().contains('<'), "a placeholder left in {b}");
        }
        let (status, answer) = gitea.api(user, &self.method, api, body);
        assert!(
            (200..300).contains(&status),
            "{} {path} as {}: {status} {answer}",
            self.method,
            user.login
        );
        answer
    }
}

/// The quoted strings of a line (`"a" "b"` or `["a", "b"]`).
fn quoted(line: &str) -> Vec<String> {
    line.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// The bridge's settings: the test's own keys (this Gitea and Buildbot,
/// polling once an hour, no sweep) and `org` and `repos` as given.
fn bridge_settings(
    dir: &Path,
    gitea: &Gitea,
    buildbot: &Buildbot,
    listen: std::net::SocketAddr,
    org: &str,
    repos: &[String],
) -> String {
    format!(
        "gitea_url = {:?}\ngitea_token_file = {:?}\nbuildbot_url = {:?}\nbuildbot_password_file = {:?}\n\
         results_dir = {:?}\nstate_db = {:?}\nlisten = \"{listen}\"\npoll_interval_s = 3600\n\
         follow_interval_s = 0.5\nsweep_interval_s = 0\nwebhook_secret_file = {:?}\norg = {org:?}\nrepos = {repos:?}\n",
        gitea.url,
        dir.join("secrets/gitea-token"),
        buildbot.url,
        buildbot.bridge_password_file,
        buildbot.results_dir,
        dir.join("bridge/state.sqlite"),
        dir.join("secrets/webhook-secret"),
    )
}

#[test]
fn a_recipe_enrolled_as_the_page_says_takes_a_members_testme_through_its_webhook() {
    if !ready() {
        return;
    }
    let t0 = Instant::now();
    let page = Page::load();
    let steps = page.steps();
    let numbers: Vec<&str> = steps.iter().map(|s| s.split_once(". ").unwrap().0).collect();
    assert_eq!(numbers, ["1", "2", "3", "4", "5"], "the page's steps: {steps:?}");
    let step = |n: usize| eprintln!("page step {}", steps[n - 1]);

    let dir = test_support::TempDir::new();
    let gitea = Gitea::start(&dir.path().join("gitea"));
    gitea.org(ORG);
    // The owner who enrols: in the Owners team, with the page's token.
    let owner_call = page.call("owner-token");
    assert_eq!(
        (owner_call.method.as_str(), owner_call.path.as_str()),
        ("POST", "/api/v1/users/<you>/tokens")
    );
    let owner = gitea.user_with_token("operator", &owner_call.filled(&[("<you>", "operator")]).1.unwrap());
    gitea.add_member(ORG, "operator");
    let maintainer = gitea.user("maintainer");
    let outsider = gitea.user("outsider");

    // Once per cc-ci: the bot, its token and its team (installation).
    let bot_call = page.call("bot-token");
    assert_eq!(
        (bot_call.method.as_str(), bot_call.path.as_str()),
        ("POST", "/api/v1/users/<bot>/tokens")
    );
    let bot = gitea.user_with_token(BOT, &bot_call.filled(&[("<bot>", BOT)]).1.unwrap());
    let team = page.call("team").send(&gitea, &owner, &[("<org>", ORG)]);
    let team_id = team["id"].as_i64().expect("the team's id").to_string();
    let ids: &[(&str, &str)] = &[
        ("<org>", ORG),
        ("<recipe>", RECIPE),
        ("<bot>", BOT),
        ("<team id>", &team_id),
    ];
    page.call("team-member").send(&gitea, &owner, ids);
    // A team of maintainers (Gitea's own business, not the page's).
    let maintainers = gitea.api(
        &owner,
        "POST",
        &format!("/orgs/{ORG}/teams"),
        Some(json!({"name": "maintainers", "units_map": {"repo.code": "read", "repo.pulls": "read"}})),
    );
    assert_eq!(maintainers.0, 201, "{maintainers:?}");
    let maintainers_id = maintainers.1["id"].as_i64().unwrap().to_string();
    // A recipe enrolled at installation, in the bot's team.
    let (s, v) = gitea.api(
        &owner,
        "POST",
        &format!("/orgs/{ORG}/repos"),
        Some(json!({"name": "custom-html", "auto_init": true})),
    );
    assert_eq!(s, 201, "{v}");
    let (s, v) = gitea.api(
        &owner,
        "PUT",
        &format!("/teams/{team_id}/repos/{ORG}/custom-html"),
        None,
    );
    assert_eq!(s, 204, "{v}");

    // The page's poll list, and the list before this recipe was added.
    let nix = quoted(&page.block("poll-list-nix"));
    let toml_text = page.block("poll-list-toml");
    let table: toml::Table = toml::from_str(&toml_text).expect("the page's TOML");
    assert_eq!(table.keys().collect::<Vec<_>>(), ["org", "repos"], "{toml_text}");
    let doc_repos: Vec<String> = table["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(nix, doc_repos, "the Nix and TOML snippets list the same repositories");
    assert_eq!(table["org"].as_str(), Some("<org>"));
    let after: Vec<String> = doc_repos.iter().map(|r| fill(r, ids)).collect();
    assert!(after.contains(&format!("{ORG}/{RECIPE}")), "{after:?}");
    let before: Vec<String> = after
        .iter()
        .filter(|r| **r != format!("{ORG}/{RECIPE}"))
        .cloned()
        .collect();

    // cc-ci as installed: Buildbot (its workers reading the settings folder
    // of steps 4 and 5) and the bridge with the bot's token.
    let settings = dir.path().join("settings");
    std::fs::create_dir_all(&settings).unwrap();
    let buildbot = Buildbot::start_with_settings(&dir.path().join("buildbot"), 1, &ccci(), &settings);
    let webhook_secret = format!("hook-{}", test_support::token());
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/gitea-token"), format!("{}\n", bot.token)).unwrap();
    std::fs::write(dir.path().join("secrets/webhook-secret"), format!("{webhook_secret}\n")).unwrap();
    // cc-ci was installed an hour ago: its bridge first started then (a
    // bridge's first minute is a first start still being placed on
    // Gitea's clock).
    let state = bridge::state::State::open(&dir.path().join("bridge/state.sqlite")).unwrap();
    let installed = bridge::state::now() - 3600.0;
    state.first_start_on_giteas_clock(installed).unwrap();
    assert_eq!(state.first_start().unwrap(), installed);
    drop(state);
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        bridge_settings(dir.path(), &gitea, &buildbot, listen, ORG, &before),
    )
    .unwrap();
    let mut bridge = Bridge::start(Path::new(env!("CARGO_BIN_EXE_bridge")), &config, listen);
    let bridge_url = bridge.url.clone();
    let subs: Vec<(&str, &str)> = ids
        .iter()
        .copied()
        .chain([
            ("https://<bridge>", bridge_url.as_str()),
            ("<webhook secret>", webhook_secret.as_str()),
            ("<maintainers team id>", maintainers_id.as_str()),
            ("<login>", maintainer.login.as_str()),
        ])
        .collect();

    step(1);
    let repo = page.call("repo").send(&gitea, &owner, &subs);
    assert_eq!(repo["private"], false, "{repo}");
    // The recipe's history and a pull request, whose head carries the
    // recipe's own test (step 5).
    let mut pr = gitea.push_pr(
        ORG,
        RECIPE,
        &test_support::fixture_recipes().join(RECIPE),
        "1.0.0+1.22.1^{commit}",
        "1.1.0+1.22.1^{commit}",
        "upgrade",
    );
    gitea.push_edit(&mut pr, "the recipe's own cc-ci test", |clone| {
        let custom = clone.join("tests/ccci/custom");
        std::fs::create_dir_all(&custom).unwrap();
        let test = custom.join(OWN_TEST);
        test_support::write_executable(
            &test,
            "#!/bin/sh\nset -eu\ncurl --fail --silent --show-error --max-time 20 --output /dev/null \\\n  \
             --resolve \"$CCCI_APP_DOMAIN:$CCCI_TRAEFIK_PORT:$CCCI_TRAEFIK_HOST\" \"$CCCI_APP_URL\"\n",
        );
    });
    page.call("team-repo").send(&gitea, &owner, &subs);
    page.call("maintainer").send(&gitea, &owner, &subs);
    // A member's `!testme` while the recipe is not yet enrolled.
    let early = gitea.comment(&maintainer, &pr, "!testme");
    let early_at = chrono::DateTime::parse_from_rfc3339(early["created_at"].as_str().unwrap()).unwrap();
    // Enrolled in a later second than that comment (Gitea stamps whole seconds).
    std::thread::sleep(Duration::from_millis(1100));

    step(2);
    std::fs::write(
        &config,
        bridge_settings(dir.path(), &gitea, &buildbot, listen, ORG, &after),
    )
    .unwrap();
    bridge.kill();
    bridge.restart();
    let key = format!("{ORG}/{RECIPE}");
    let entry = wait_for("the first poll of the enrolled recipe", Duration::from_secs(60), || {
        let (_, st) = bridge.status();
        let e = st["health"]["repos"][&key].clone();
        e["last_polled"].is_number().then_some((st, e))
    });
    let (st, entry) = entry;
    assert!(entry["error"].is_null(), "{st}");
    assert_eq!(st["ok"], true, "{st}");
    // The first poll read the earlier comment and left it alone.
    let log = bridge.log_text();
    let id = &early["id"];
    assert!(
        !log.contains(&format!("comment {id} by")) && !log.contains(&format!("comment {id}:")),
        "a comment from before the enrolment was taken:\n{log}"
    );
    assert!(buildbot.buildrequests().is_empty(), "{log}");
    assert!(gitea.status(&pr.repo, &pr.head_sha, "cc-ci/testme").is_none());
    assert!(
        entry["enrolled_at"]
            .as_f64()
            .is_some_and(|t| t > early_at.timestamp() as f64),
        "{entry}"
    );

    step(3);
    let hook = page.call("webhook").send(&gitea, &owner, &subs);
    assert_eq!(hook["config"]["url"], format!("{bridge_url}/hook"), "{hook}");

    step(4);
    let settings_toml = page.block("settings");
    std::fs::create_dir_all(settings.join(RECIPE)).unwrap();
    std::fs::write(settings.join(RECIPE).join("ccci.toml"), &settings_toml).unwrap();
    let doc_settings: toml::Table = toml::from_str(&settings_toml).expect("the page's ccci.toml");

    step(5);
    std::fs::write(settings.join("approved.toml"), fill(&page.block("approved"), &subs)).unwrap();

    // A non-member's `!testme` comes through the webhook (polling is once
    // an hour) and starts nothing.
    gitea.comment(&outsider, &pr, "!testme");
    wait_for(
        "the webhook's delivery of the outsider's comment",
        Duration::from_secs(30),
        || {
            bridge
                .log_text()
                .contains(&format!("ignored: outsider is not a member of {ORG}"))
                .then_some(())
        },
    );
    assert!(buildbot.buildrequests().is_empty());

    // The member's `!testme`: through the webhook, signed with the secret.
    let t_comment = Instant::now();
    let c = gitea.comment(&maintainer, &pr, "!testme");
    wait_for("the build request", Duration::from_secs(30), || {
        buildbot.buildrequests().first().cloned()
    });
    let forced = t_comment.elapsed();
    let log = bridge.log_text();
    assert!(
        log.contains(&format!("comment {} by maintainer via webhook: !testme", c["id"])),
        "{log}"
    );
    assert_eq!(buildbot.buildrequests().len(), 1, "{log}");
    // The bot's token and team are enough for the commit status ...
    let pending = wait_for("the pending status", Duration::from_secs(30), || {
        gitea.status(&pr.repo, &pr.head_sha, "cc-ci/testme")
    });
    assert_eq!(pending["creator"]["login"], BOT, "{pending}");
    let done = wait_for("the final status", RUN, || {
        gitea
            .status(&pr.repo, &pr.head_sha, "cc-ci/testme")
            .filter(|s| s["status"] != "pending")
    });
    assert_eq!(done["status"], "success", "{done}\n{}", bridge.log_text());
    // ... and for its comment with the pictures attached.
    let mine = wait_for("the bot's comment with its pictures", Duration::from_secs(60), || {
        let m: Vec<Value> = gitea
            .comments(&pr)
            .into_iter()
            .filter(|c| c["user"]["login"] == BOT)
            .collect();
        (m.len() == 1 && m[0]["assets"].as_array().is_some_and(|a| !a.is_empty())).then_some(m)
    });
    assert!(
        mine[0]["body"].as_str().unwrap().contains("asked by @maintainer"),
        "{mine:?}"
    );

    // The run: the page's settings in force, the recipe's own test run.
    let builds = buildbot.builds();
    assert_eq!(builds.len(), 1, "{builds:?}");
    let buildid = builds[0]["buildid"].as_i64().unwrap();
    let props = buildbot.properties(buildid);
    assert_eq!(props["recipe"], RECIPE);
    assert_eq!(props["head_sha"], pr.head_sha.as_str());
    assert_eq!(props["comment_id"], c["id"].to_string());
    let rel = props["results_rel"].as_str().expect("results_rel");
    let run = buildbot.results_dir.join(rel);
    let results: Value = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let s = &results["settings"];
    assert_eq!(
        s["file"].as_str().map(PathBuf::from),
        Some(settings.join(RECIPE).join("ccci.toml")),
        "{s}"
    );
    let http = doc_settings["timeouts"]["http"].as_integer().unwrap() as f64;
    assert_eq!(s["timeouts"]["http_s"].as_f64(), Some(http), "{s}");
    assert_eq!(s["approved"], true, "{s}");
    assert_eq!(s["repo_local"]["used"], true, "{s}");
    let tested = results["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rung"] == "tested")
        .cloned()
        .unwrap();
    assert_eq!(tested["status"], "pass", "{results}");
    let logs: Vec<String> = std::fs::read_dir(run.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        logs.iter().any(|l| l.contains(OWN_TEST)),
        "the recipe's own test ran: {logs:?}"
    );
    eprintln!(
        "FIGURES enrol: comment -> build request {:.2} s (webhook), whole test {:.0} s",
        forced.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
