//! `GET /events`: what happens on the node, as server-sent events, for the
//! open pages to draw without a reload. A post comes as the same escaped
//! markup a page load would draw (so the page's script never builds markup
//! from network text).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use node::api::PostView;
use node::{NodeEvent, RemovalReason};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::pages::{post_item, Viewer};
use crate::App;

pub(crate) async fn stream(State(app): State<App>) -> Response {
    let viewer = match Viewer::of(&app).await {
        Ok(v) => v,
        Err(e) => {
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, e).into_response();
        }
    };
    let events = app.handle.subscribe();
    let s = updates(app, viewer, events);
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn updates(
    app: App,
    viewer: Viewer,
    events: tokio::sync::broadcast::Receiver<NodeEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(
        (app, viewer, events, false),
        |(app, mut viewer, mut events, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    // Missed events: the page loads itself again.
                    Err(RecvError::Lagged(_)) => {
                        let e = Event::default().event("reload").data("{}");
                        return Some((Ok(e), (app, viewer, events, false)));
                    }
                    Err(RecvError::Closed) => {
                        let e = Event::default().event("stopped").data("{}");
                        return Some((Ok(e), (app, viewer, events, true)));
                    }
                };
                if matches!(event, NodeEvent::Moderation { .. }) {
                    // Roles may have changed: offer the right forms.
                    if let Ok(v) = Viewer::of(&app).await {
                        viewer = v;
                    }
                }
                if let Some(e) = render(&app, &viewer, event).await {
                    return Some((Ok(e), (app, viewer, events, false)));
                }
            }
        },
    )
}

fn post_event(kind: &str, p: &PostView, viewer: &Viewer) -> Event {
    let html = post_item(p, viewer, maud::html! {}, p.author != viewer.me).into_string();
    let data = json!({
        "id": p.id,
        "topic": p.topic,
        "parent": p.parent,
        "pinned": p.pinned,
        "mine": p.author == viewer.me,
        "html": html,
    });
    Event::default().event(kind).data(data.to_string())
}

async fn render(app: &App, viewer: &Viewer, event: NodeEvent) -> Option<Event> {
    match event {
        NodeEvent::PostStored(p) => Some(post_event("post", &p, viewer)),
        NodeEvent::PostRestored(p) => Some(post_event("restored", &p, viewer)),
        NodeEvent::PostRemoved { id, topic, reason } => {
            // A hidden post: its notice, as a page load draws it.
            let notice = match reason {
                RemovalReason::Hidden => match id.parse::<protocol::PostId>() {
                    Ok(pid) => app.handle.post(pid).await.ok().flatten(),
                    Err(_) => None,
                },
                _ => None,
            };
            let reason = match reason {
                RemovalReason::Retracted => "retracted",
                RemovalReason::Hidden => "hidden",
                RemovalReason::Blocked => "blocked",
            };
            let html = notice.map(|p| post_item(&p, viewer, maud::html! {}, false).into_string());
            let data = json!({ "id": id, "topic": topic, "reason": reason, "html": html });
            Some(Event::default().event("removed").data(data.to_string()))
        }
        NodeEvent::PinChanged { id, topic, pinned } => {
            let data = json!({ "id": id, "topic": topic, "pinned": pinned });
            Some(Event::default().event("pin").data(data.to_string()))
        }
        _ => None,
    }
}
