//! Issue 18's topic directory in the web app: the home page lists the
//! topics moderators describe that this node has not joined, each with
//! its description and a Join button that joins it. Raw HTTP on
//! 127.0.0.1 (no browser needed); waits poll a condition with a deadline.

use crate::web_support::{csrf_in, http, post_form, set_cookie, App};
use anyhow::{bail, Result};
use mutual_tests::{start, topic, wait_until, TestNet, DEADLINE};

/// `node`'s app and a session cookie, from a fresh login link.
async fn logged_in(node: &mutual_tests::TestNode) -> Result<(App, String)> {
    let app = App::serve(node).await?;
    let link = app.login_link()?;
    let path = link.trim_start_matches(&app.base()).to_string();
    let (_, headers, _) = http(app.port(), "GET", &path, &[], b"").await?;
    let Some(cookie) = set_cookie(&headers) else {
        bail!("no session cookie after login");
    };
    Ok((app, cookie))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_lists_the_directory_and_joins_a_listed_topic() -> Result<()> {
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let member = start(net.member("kit")?, &[&admin.addr]).await?;
    admin
        .handle
        .describe_topic(topic("grief"), "losing someone & living on".into())
        .await?;
    admin
        .handle
        .describe_topic(topic("burnout"), "when work takes everything".into())
        .await?;
    member.handle.join(topic("burnout")).await?;
    wait_until(DEADLINE, "the directory on the member's node", || async {
        member
            .handle
            .topic_directory()
            .await
            .is_ok_and(|d| d.len() == 2)
    })
    .await?;

    let (app, cookie) = logged_in(&member).await?;
    let port = app.port();
    let home = || async {
        let (status, _, page) = http(port, "GET", "/", &[("Cookie", cookie.as_str())], b"").await?;
        anyhow::ensure!(status == 200, "home answered {status}");
        Ok::<String, anyhow::Error>(String::from_utf8_lossy(&page).to_string())
    };
    let page = home().await?;
    let (_, directory) = page
        .split_once("More topics in this community")
        .unwrap_or_else(|| panic!("no directory on the home page: {page}"));
    assert!(directory.contains("grief"), "{directory}");
    assert!(
        directory.contains("losing someone &amp; living on"),
        "escaped description: {directory}"
    );
    assert!(
        !directory
            .split("</ul>")
            .next()
            .unwrap_or("")
            .contains(">burnout<"),
        "a joined topic is not offered again"
    );
    assert!(
        page.contains("when work takes everything"),
        "joined topic's description"
    );

    // Its Join button joins it.
    let csrf = csrf_in(&page).unwrap_or_default();
    let (status, _, _) = post_form(
        port,
        &cookie,
        "/join",
        &format!("csrf={csrf}&back=home&topic=grief"),
    )
    .await?;
    assert!(status == 303 || status == 200, "join answered {status}");
    wait_until(DEADLINE, "grief joined", || async {
        member
            .handle
            .topics()
            .await
            .is_ok_and(|t| t.iter().any(|t| t.name == "grief"))
    })
    .await?;
    let page = home().await?;
    assert!(page.contains("You have joined every topic the moderators list."));
    Ok(())
}

/// The moderation page shows a reported post from a topic the moderator
/// never joined (the copy the report carries), and its Resolve form
/// closes the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_moderation_page_shows_the_carried_post_and_resolves_the_report() -> Result<()> {
    let mut net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let member = start(net.member("kit")?, &[&admin.addr]).await?;
    member.handle.join(topic("night")).await?;
    let post = member
        .handle
        .publish(topic("night"), mutual_tests::draft("<b>can't sleep</b>"))
        .await?;
    member.handle.report(post, "worried".into()).await?;
    wait_until(DEADLINE, "the report in the admin's queue", || async {
        admin.handle.mod_queue().await.is_ok_and(|q| q.len() == 1)
    })
    .await?;

    let (app, cookie) = logged_in(&admin).await?;
    let port = app.port();
    let (status, _, page) = http(port, "GET", "/mod", &[("Cookie", cookie.as_str())], b"").await?;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page).to_string();
    assert!(
        page.contains("&lt;b&gt;can't sleep&lt;/b&gt;"),
        "escaped: {page}"
    );
    assert!(page.contains("In night, by kit"), "{page}");
    let report = admin.handle.mod_queue().await?[0].id.clone();
    let csrf = csrf_in(&page).unwrap_or_default();
    let (status, _, _) = post_form(
        port,
        &cookie,
        "/mod/resolve",
        &format!("csrf={csrf}&back=mod&report={report}&outcome=none&note=checked+in"),
    )
    .await?;
    assert!(status == 303, "resolve answered {status}");
    assert!(admin.handle.mod_queue().await?.is_empty());
    Ok(())
}

/// Issue 18's admission settings in the app: the admin publishes rules
/// and an invite-only policy, issues an invitation of chosen uses and
/// days, and locks the community down and lifts it; bad numbers are
/// refused with the reason and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_sets_rules_issues_limited_invitations_and_locks_down_from_the_app() -> Result<()>
{
    let net = TestNet::new()?;
    let admin = start(net.admin.clone(), &[]).await?;
    let (app, cookie) = logged_in(&admin).await?;
    let port = app.port();
    let get = |path: &'static str| {
        let cookie = cookie.clone();
        async move {
            let (status, _, page) =
                http(port, "GET", path, &[("Cookie", cookie.as_str())], b"").await?;
            anyhow::ensure!(status == 200, "{path} answered {status}");
            Ok::<String, anyhow::Error>(String::from_utf8_lossy(&page).to_string())
        }
    };
    let page = get("/mod").await?;
    assert!(page.contains("Rules and admission"), "the admin's form");
    let csrf = csrf_in(&page).unwrap_or_default();
    let send = |path: &'static str, body: String| {
        let cookie = cookie.clone();
        async move { post_form(port, &cookie, path, &body).await }
    };

    // Rules and policy.
    let (status, _, _) = send(
        "/mod/rules",
        format!("csrf={csrf}&back=mod&rules=Be+kind%2C+always&admission=invite-only&probation=0"),
    )
    .await?;
    assert_eq!(status, 303, "rules answered {status}");
    let c = admin.handle.community().await?;
    assert_eq!(
        (c.rules.as_str(), c.admission.as_str(), c.probation_posts),
        ("Be kind, always", "invite-only", 0)
    );
    let version = c.rules_version;
    assert!(version.is_some());
    let (status, _, page) = send(
        "/mod/rules",
        format!("csrf={csrf}&back=mod&rules=x&admission=open&probation=99"),
    )
    .await?;
    assert_eq!(status, 422);
    assert!(
        String::from_utf8_lossy(&page).contains("from 0 to 20"),
        "the reason is shown"
    );
    assert_eq!(admin.handle.community().await?.rules_version, version);

    // An invitation of 3 uses for 2 days.
    let before = node::now_ms();
    let (status, _, page) = send("/invite", format!("csrf={csrf}&back=home&uses=3&days=2")).await?;
    assert_eq!(status, 200, "invite answered {status}");
    assert!(String::from_utf8_lossy(&page).contains("invite-code"));
    let list = admin.handle.invitations().await?;
    let [invitation] = list.as_slice() else {
        panic!("one invitation: {list:?}")
    };
    assert_eq!(invitation.uses, 3);
    const DAY: u64 = 24 * 3600 * 1000;
    assert!(
        invitation.expires_at >= before + 2 * DAY
            && invitation.expires_at <= node::now_ms() + 2 * DAY,
        "expires in two days"
    );
    let (status, _, _) = send("/invite", format!("csrf={csrf}&back=home&uses=0&days=2")).await?;
    assert_eq!(status, 422);
    assert_eq!(admin.handle.invitations().await?.len(), 1);

    // Lockdown, shown with its reason, then lifted.
    let (status, _, _) = send(
        "/mod/lockdown",
        format!("csrf={csrf}&back=mod&act=lock&topic=&days=3&reason=a+raid"),
    )
    .await?;
    assert_eq!(status, 303, "lockdown answered {status}");
    let lockdowns = admin.handle.mod_list().await?.lockdowns;
    assert_eq!(lockdowns.len(), 1);
    assert_eq!(
        (lockdowns[0].reason.as_str(), lockdowns[0].hold_recent_days),
        ("a raid", Some(3))
    );
    assert!(get("/mod").await?.contains("a raid"));
    let (status, _, _) = send("/mod/lockdown", format!("csrf={csrf}&back=mod&act=lift")).await?;
    assert_eq!(status, 303, "lift answered {status}");
    assert!(admin.handle.mod_list().await?.lockdowns.is_empty());
    Ok(())
}
