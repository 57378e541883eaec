//! The moderators' "waiting for approval" section of the moderation page:
//! posts of new members held on probation (`protocol/src/probation.rs`),
//! each with an approve and a reject form (CSRF-protected like every
//! form, posted to `/mod/act`).

use maud::{html, Markup};
use node::api::PostView;

use crate::pages::{body_text, clean, csrf_field, short_id, who, Viewer};
use crate::time;

/// The section, for a moderator's page.
pub(crate) fn held_section(held: &[PostView], v: &Viewer) -> Markup {
    html! {
        section aria-labelledby="held-h" {
            h2 id="held-h" { "Waiting for approval" }
            @if held.is_empty() {
                p { "No post is waiting for approval." }
            } @else {
                p { "New members' first posts are shown to nobody but them until a moderator approves them." }
                ol class="queue" {
                    @for p in held { (held_item(p, v)) }
                }
            }
        }
    }
}

fn held_item(p: &PostView, v: &Viewer) -> Markup {
    let short = short_id(&p.id);
    html! {
        li class="post held" id=(format!("held-{}", p.id)) {
            p {
                (who(p.author_name.as_deref(), &p.author)) " in "
                a href=(format!("/t/{}", p.topic)) { (clean(&p.topic)) } ", "
                time datetime=(time::iso(p.created_at)) { (time::utc(p.created_at)) }
                " · " code { (short) }
            }
            @if let Some(cw) = &p.content_warning {
                p { "Content warning: " (clean(cw)) }
            }
            @if let Some(b) = &p.body { (body_text(b)) }
            div class="actions" {
                form method="post" action="/mod/act" class="inline" {
                    (csrf_field(v))
                    input type="hidden" name="act" value="approve";
                    input type="hidden" name="target" value=(p.id);
                    input type="hidden" name="back" value="mod";
                    button type="submit" { "Approve" span class="visually-hidden" { " " (short) } }
                }
                details class="act" {
                    summary { "Reject" span class="visually-hidden" { " " (short) } }
                    form method="post" action="/mod/act" {
                        (csrf_field(v))
                        input type="hidden" name="act" value="reject";
                        input type="hidden" name="target" value=(p.id);
                        input type="hidden" name="back" value="mod";
                        label for=(format!("reject-{}", p.id)) { "Why (shown to its author)" }
                        input type="text" id=(format!("reject-{}", p.id)) name="reason" required;
                        button type="submit" { "Reject post" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_post() -> PostView {
        PostView {
            id: "mp1heldpost0000".into(),
            topic: "t".into(),
            author: "mu1newcomer".into(),
            author_name: Some("river".into()),
            created_at: 1_800_000_000_000,
            parent: None,
            content_warning: None,
            body: Some("first <b>post</b>".into()),
            hidden: false,
            hidden_by: None,
            hidden_reason: None,
            pinned: false,
            held: true,
            rejected: false,
        }
    }

    fn moderator() -> Viewer {
        Viewer {
            me: "mu1mod".into(),
            moderator: true,
            csrf: "tok".into(),
            in_queue: true,
        }
    }

    #[test]
    fn each_held_post_has_an_approve_and_a_reject_form_with_the_csrf_token() {
        let html = held_section(&[held_post()], &moderator()).into_string();
        assert!(html.contains("Waiting for approval"));
        assert!(html.contains("value=\"approve\"") && html.contains("value=\"reject\""));
        assert_eq!(html.matches("<form").count(), 2);
        assert_eq!(html.matches("name=\"csrf\" value=\"tok\"").count(), 2);
        assert!(html.contains("first &lt;b&gt;post&lt;/b&gt;"), "{html}");
        assert!(html.contains("river"));
        let empty = held_section(&[], &moderator()).into_string();
        assert!(empty.contains("No post is waiting for approval."));
    }

    #[test]
    fn its_author_sees_a_held_post_marked_as_waiting() {
        let author = Viewer {
            me: "mu1newcomer".into(),
            moderator: false,
            csrf: "tok".into(),
            in_queue: false,
        };
        let html = crate::pages::post_item(&held_post(), &author, html! {}, false).into_string();
        assert!(
            html.contains("Waiting for a moderator&#39;s approval")
                || html.contains("Waiting for a moderator's approval"),
            "{html}"
        );
    }
}
