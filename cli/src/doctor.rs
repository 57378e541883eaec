//! `mutual doctor`: checks the store of a stopped node. It runs the
//! store's integrity check (every post has its entries, every entry its
//! post, counts match, the log decodes, tombstones are linked) and
//! compares what the store holds with its record of acknowledged writes
//! (a scope holding fewer items than were acknowledged lost them to damage
//! on disk). It names ids and topics, never what a post says.
//!
//! `--repair` fixes what the integrity check found (the store's own
//! `repair`); `--accept-loss` rewrites the record of acknowledged writes
//! from what the store holds, for items no peer can send back (the node
//! fetches them from its peers by itself when it runs). The exit status is
//! non-zero while a problem remains.

use anyhow::{Context, Result};
use clap::Args;
use node::store::{Damage, Store, StoreError};
use serde_json::json;

use crate::output::{self, line};
use crate::Ctx;

/// `mutual doctor` options.
#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// Fix what the integrity check finds: drop entries without their post
    /// or that do not decode, rebuild missing entries and counts.
    #[arg(long)]
    repair: bool,
    /// Accept that acknowledged items the store lost are gone: the record
    /// of acknowledged writes is rewritten from what the store holds, and
    /// the warning stops. Only when no peer can send them back (the node
    /// fetches them from its peers when it runs).
    #[arg(long)]
    accept_loss: bool,
}

/// One scope of the comparison with the record of acknowledged writes.
fn scope_rows(store: &Store) -> Vec<(String, u64, u64)> {
    let held: std::collections::BTreeMap<Option<String>, u64> =
        store.stored_ever().into_iter().collect();
    let mut rows: Vec<(String, u64, u64)> = store
        .acknowledged()
        .unwrap_or_default()
        .into_iter()
        .map(|(scope, acked)| {
            let now = held.get(&scope).copied().unwrap_or(0);
            (node::store::ack::scope_name(scope.as_deref()), acked, now)
        })
        .collect();
    rows.sort();
    rows
}

/// `mutual doctor [--repair] [--accept-loss]`.
pub(crate) fn doctor(ctx: &Ctx, args: DoctorArgs) -> Result<()> {
    ctx.check_dir()?;
    ctx.unlock()?;
    ctx.data.identity()?;
    let path = ctx.data.store_path();
    if !path.exists() {
        if ctx.json {
            return output::json(&json!({ "store": "none", "problems": [], "damage": null }));
        }
        line(format!(
            "No store yet in {} (the node has not run here): nothing to check.",
            ctx.data.path().display()
        ))?;
        return Ok(());
    }
    let store = Store::open(&path, ctx.data.store_keys()?).map_err(|e| match e {
        StoreError::InUse { .. } => {
            anyhow::anyhow!("{e} (`mutual doctor` checks the store of a stopped node)")
        }
        other => anyhow::Error::from(other),
    })?;
    let found = store
        .check_integrity()
        .context("checking the store's integrity")?;
    let repaired = if args.repair && !found.is_empty() {
        Some(store.repair().context("repairing the store")?)
    } else {
        None
    };
    let remaining = if repaired.is_some() {
        store
            .check_integrity()
            .context("checking the store again after the repair")?
    } else {
        found.clone()
    };
    let damage_found = store.damage();
    // As found, before any --accept-loss.
    let rows = scope_rows(&store);
    let accepted = args.accept_loss && damage_found.is_some();
    if accepted {
        store
            .accept_loss()
            .context("accepting the loss of acknowledged writes")?;
    }
    let damage = store.damage();
    store.close().context("closing the store")?;

    if ctx.json {
        output::json(&json!({
            "store": path.display().to_string(),
            "problems": found,
            "repaired": repaired,
            "remaining": remaining,
            "acknowledged": rows.iter().map(|(scope, acked, held)| json!({
                "scope": scope, "acknowledged": acked, "held": held,
            })).collect::<Vec<_>>(),
            "damage": damage_found,
            "accepted_loss": accepted,
        }))?;
    } else {
        print_report(
            &found,
            repaired,
            &remaining,
            &rows,
            damage_found.as_ref(),
            accepted,
        )?;
    }
    let lost = damage
        .as_ref()
        .is_some_and(|d| matches!(d, Damage::Lost(_)));
    match (remaining.len(), lost) {
        (0, false) => Ok(()),
        (n, lost) => {
            let mut what = Vec::new();
            if n > 0 {
                what.push(format!(
                    "{n} integrity problem(s) remain (`mutual doctor --repair` fixes them)"
                ));
            }
            if lost {
                what.push(
                    "acknowledged items are missing (run the node with peers online to fetch \
                     them back, or `mutual doctor --accept-loss` if none can)"
                        .to_string(),
                );
            }
            anyhow::bail!("{}", what.join("; "))
        }
    }
}

fn print_report(
    found: &[String],
    repaired: Option<usize>,
    remaining: &[String],
    rows: &[(String, u64, u64)],
    damage: Option<&Damage>,
    accepted: bool,
) -> Result<()> {
    if found.is_empty() {
        line("integrity  consistent: every post has its entries and every entry its post")?;
    } else {
        line(format!("integrity  {} problem(s):", found.len()))?;
        for p in found {
            line(format!("  {p}"))?;
        }
    }
    if let Some(n) = repaired {
        line(format!(
            "repair     fixed {n} entr{}; {} problem(s) remain",
            if n == 1 { "y" } else { "ies" },
            remaining.len()
        ))?;
        for p in remaining {
            line(format!("  {p}"))?;
        }
    }
    if rows.is_empty() && !matches!(damage, Some(Damage::RecordUnreadable(_))) {
        line(
            "acked      no record of acknowledged writes yet (written at the node's first flush)",
        )?;
    } else {
        line("acked      items ever stored, as recorded when acknowledged / as the store holds:")?;
        for (scope, acked, held) in rows {
            let verdict = if held >= acked {
                "ok".to_string()
            } else {
                format!("{} MISSING", acked - held)
            };
            line(format!("  {scope}: {acked} / {held}  {verdict}"))?;
        }
    }
    match damage {
        None => line("damage     none: the store holds everything it acknowledged")?,
        Some(d) => line(format!("damage     {d}"))?,
    }
    if accepted {
        line("accepted   the record now matches what the store holds; the warning stops")?;
    }
    Ok(())
}
