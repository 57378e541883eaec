//! Admission commands: `mutual invite` (invitations in an invite-only
//! community), `mutual community rules|policy` (the admin's manifest
//! updates) and `mutual mod lockdown|lift`. Thin: parse, ask the node,
//! print.

use anyhow::Result;
use clap::Args;
use node::api::{CommunityView, InvitationView};
use node::control::Request;
use serde_json::Value;

use crate::output::{self, line};
use crate::Ctx;

/// `mutual invite`.
#[derive(Args, Debug, Default)]
pub(crate) struct InviteArgs {
    /// How many people the invitation may admit (invite-only communities).
    #[arg(long, value_name = "N")]
    uses: Option<u32>,
    /// How long it may be used: a number with `d` (days), `h` (hours) or
    /// `m` (minutes), such as `7d` (the default) or `12h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    expires: Option<u64>,
    /// Withdraw an invitation (its id as `mutual invite --list` prints it).
    #[arg(long, value_name = "ID", conflicts_with_all = ["uses", "expires", "list"])]
    revoke: Option<String>,
    /// List the invitations and whom each admitted (admin and moderators).
    #[arg(long, conflicts_with_all = ["uses", "expires"])]
    list: bool,
}

/// Parses `7d`, `12h`, `30m` into milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let bad = || {
        format!("`{text}` is not a duration: write a whole number with d (days), h (hours) or m (minutes), such as 7d or 12h")
    };
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let per_unit: u64 = match unit {
        "d" => 24 * 60 * 60 * 1000,
        "h" => 60 * 60 * 1000,
        "m" => 60 * 1000,
        _ => return Err(bad()),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => n.checked_mul(per_unit).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Runs `mutual invite`.
pub(crate) async fn invite(ctx: &Ctx, args: InviteArgs) -> Result<()> {
    if let Some(id) = args.revoke {
        let result = ctx
            .call(Request::InviteRevoke {
                invitation: id.clone(),
            })
            .await?;
        if ctx.json {
            return output::json(&result);
        }
        return Ok(line(format!(
            "Withdrew invitation {}: redemptions dated from now on admit nobody.",
            output::fingerprint(&id)
        ))?);
    }
    if args.list {
        let list: Vec<InvitationView> = ctx.call_as(Request::InviteList).await?;
        if ctx.json {
            return output::json(&list);
        }
        if list.is_empty() {
            return Ok(line("No invitations yet.")?);
        }
        for i in list {
            let state = match i.revoked_at {
                Some(_) => "withdrawn".to_string(),
                None => format!("expires {}", until(i.expires_at)),
            };
            line(format!(
                "{}  by {}  {}/{} used  {state}",
                output::fingerprint(&i.invitation),
                output::who(i.by.name.as_deref(), &i.by.key),
                i.admitted.len(),
                i.uses
            ))?;
            for k in &i.admitted {
                line(format!("    admitted {}", output::fingerprint(k)))?;
            }
        }
        return Ok(());
    }
    let result = ctx
        .call(Request::InviteIssue {
            uses: args.uses,
            expires_in_ms: args.expires,
        })
        .await?;
    if ctx.json {
        return output::json(&result);
    }
    let code = result
        .get("invite")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the node's answer held no invite code; are `mutual` and the node the same version?"))?;
    line(code)?;
    if let Some(id) = result.get("invitation").and_then(Value::as_str) {
        let uses = result.get("uses").and_then(Value::as_u64).unwrap_or(1);
        let expires = result
            .get("expires_at")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        eprintln!(
            "Invitation {} admits {uses} {} and expires {}; withdraw it with `mutual invite --revoke {}`.",
            output::fingerprint(id),
            if uses == 1 { "person" } else { "people" },
            until(expires),
            output::fingerprint(id)
        );
    }
    Ok(())
}

/// `mutual community rules --file FILE` and `mutual community policy`:
/// the admin publishes the next version.
pub(crate) async fn update(
    ctx: &Ctx,
    rules: Option<String>,
    admission: Option<&str>,
    probation_posts: Option<u32>,
) -> Result<()> {
    if rules.is_none() && admission.is_none() && probation_posts.is_none() {
        anyhow::bail!("say what changes: --open or --invite-only, and/or --probation N");
    }
    let result = ctx
        .call(Request::CommunityUpdate {
            rules,
            admission: admission.map(str::to_string),
            probation_posts,
        })
        .await?;
    if ctx.json {
        return output::json(&result);
    }
    let version = result.get("version").and_then(Value::as_u64).unwrap_or(0);
    let view: CommunityView = ctx.call_as(Request::Community).await?;
    Ok(line(format!(
        "Published version {version}: {} community, probation {} posts; every node will use it.",
        view.admission, view.probation_posts
    ))?)
}

/// `mutual mod lockdown` / `mutual mod lift`.
pub(crate) async fn lockdown(
    ctx: &Ctx,
    topic: Option<String>,
    lift: bool,
    hold_recent_days: Option<u32>,
    reason: Option<String>,
) -> Result<()> {
    if let Some(t) = &topic {
        crate::args::topic(t)?;
    }
    let place = match &topic {
        Some(t) => format!("topic {t}"),
        None => "the community".to_string(),
    };
    let (request, done) = if lift {
        (
            Request::ModLift {
                topic: topic.clone(),
            },
            format!("Lifted the lockdown of {place}"),
        )
    } else {
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("a lockdown needs --reason: it is shown to everyone"))?;
        (
            Request::ModLockdown {
                topic: topic.clone(),
                hold_recent_days,
                reason,
            },
            format!("Locked down {place}"),
        )
    };
    let result = ctx.call(request).await?;
    if ctx.json {
        return output::json(&result);
    }
    Ok(line(format!("{done}; every node will enforce it."))?)
}

/// "in 6d", "in 3h", or "expired".
fn until(at_ms: u64) -> String {
    let now = node::now_ms();
    if at_ms <= now {
        return "expired".into();
    }
    let mins = (at_ms - now) / 60_000;
    match mins {
        0..=59 => format!("in {mins}m"),
        // Rounded to the nearest: a 7-day invitation just made reads 7d.
        60..=2879 => format!("in {}h", (mins + 30) / 60),
        _ => format!("in {}d", (mins + 720) / 1440),
    }
}

/// The lockdowns in force, for `mod list` and `status`.
pub(crate) fn print_lockdowns(lockdowns: &[node::api::LockdownView], now: u64) -> Result<()> {
    for l in lockdowns {
        let place = if l.scope == "community" {
            "the whole community (no new admissions)".to_string()
        } else {
            format!("topic {}", output::clean_line(&l.scope))
        };
        let hold = match l.hold_recent_days {
            Some(d) => {
                format!(", posts of members admitted in the last {d} days wait for approval")
            }
            None => String::new(),
        };
        line(format!(
            "lockdown    {place}{hold}, by {}, {}: \"{}\"",
            output::actor(&l.by),
            output::ago(now, l.at),
            output::clean_line(&l.reason)
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_days_hours_and_minutes_and_refuse_the_rest() {
        assert_eq!(parse_duration_ms("7d"), Ok(7 * 24 * 3_600_000));
        assert_eq!(parse_duration_ms("12h"), Ok(12 * 3_600_000));
        assert_eq!(parse_duration_ms("30m"), Ok(30 * 60_000));
        for bad in [
            "",
            "7",
            "d",
            "0d",
            "-1d",
            "7w",
            "1.5d",
            "99999999999999999d",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
