//! The JSON documents of the ActivityPub actor (SPEC R-API-41 … R-API-43):
//! WebFinger, the actor, its collections, the `Event` object of a campaign
//! and the `Create`/`Update` activities that announce it. All are functions
//! of the published log and the campaigns' feed histories (the same events
//! and the same whole-hour times as the Atom feeds, R-API-24, R-API-26), so
//! that every reader and every restart gets the same bytes: they tell an
//! observer nothing the log and the feeds do not (SPEC R-PRIV-5).

use serde_json::{Value, json};

use crate::feed::{FeedCampaign, escape, rfc3339, start_of};

/// The ActivityStreams public collection.
pub const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

/// The content type of ActivityPub documents.
pub const ACTIVITY_JSON: &str = "application/activity+json";

/// The user part of the actor's `acct:` URI (SPEC R-API-41).
pub const ACTOR_NAME: &str = "campaigns";

/// Also answered by WebFinger: Mobilizon's "follow an instance" with a bare
/// domain looks up `relay@<domain>` (SPEC R-API-41).
pub const RELAY_ALIAS: &str = "relay";

/// Outbox items listed, newest first (the rest are counted).
pub const MAX_OUTBOX_ITEMS: usize = 200;

/// The instance's public origin (`https://host[:port]`, no path), from which
/// every id is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    origin: String,
    authority: String,
}

impl Base {
    /// Parses the configured public URL (SPEC R-API-40): `https://` with a
    /// host and no path, query or credentials; `http://` only for a loopback
    /// host (tests, a local proxy).
    ///
    /// # Errors
    /// What is wrong, for the operator.
    pub fn parse(url: &str) -> Result<Self, String> {
        let u = reqwest::Url::parse(url.trim())
            .map_err(|e| format!("public_url {url:?} is not a URL ({e})"))?;
        let host = u
            .host_str()
            .ok_or_else(|| format!("public_url {url:?} has no host"))?;
        let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
        match u.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(format!(
                    "public_url {url:?} must start with https:// (http:// only for a loopback host)"
                ));
            }
        }
        if !(u.path() == "/" || u.path().is_empty())
            || u.query().is_some()
            || u.fragment().is_some()
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return Err(format!(
                "public_url {url:?} must be an origin only, such as https://pledge.example"
            ));
        }
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Self {
            origin: format!("{}://{authority}", u.scheme()),
            authority,
        })
    }

    /// `https://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `host[:port]`, the domain of the `acct:` URI.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The actor's id.
    pub fn actor(&self) -> String {
        format!("{}/ap/actor", self.origin)
    }

    /// The actor's key id.
    pub fn key_id(&self) -> String {
        format!("{}/ap/actor#main-key", self.origin)
    }

    /// The inbox (also the shared inbox).
    pub fn inbox(&self) -> String {
        format!("{}/ap/inbox", self.origin)
    }

    /// The outbox.
    pub fn outbox(&self) -> String {
        format!("{}/ap/outbox", self.origin)
    }

    /// The followers collection.
    pub fn followers(&self) -> String {
        format!("{}/ap/followers", self.origin)
    }

    /// The following collection (always empty).
    pub fn following(&self) -> String {
        format!("{}/ap/following", self.origin)
    }

    /// A campaign's `Event` object id.
    pub fn event(&self, hex: &str) -> String {
        format!("{}/ap/campaigns/{hex}", self.origin)
    }

    /// A campaign's page (the Event's `url` and external participation URL).
    pub fn page(&self, hex: &str) -> String {
        format!("{}/c/{hex}", self.origin)
    }
}

/// The `@context` of the actor.
fn actor_context() -> Value {
    json!([
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1"
    ])
}

/// The `@context` of Events and activities: ActivityStreams and the
/// Mobilizon terms they use (as Mobilizon itself declares them).
fn event_context() -> Value {
    json!([
        "https://www.w3.org/ns/activitystreams",
        {
            "sc": "http://schema.org#",
            "mz": "https://joinmobilizon.org/ns#",
            "pt": "https://joinpeertube.org/ns#",
            "ical": "http://www.w3.org/2002/12/cal/ical#",
            "joinMode": {"@id": "mz:joinMode", "@type": "mz:joinModeType"},
            "externalParticipationUrl": {"@id": "mz:externalParticipationUrl", "@type": "sc:URL"},
            "commentsEnabled": {"@id": "pt:commentsEnabled", "@type": "sc:Boolean"},
            "timezone": {"@id": "mz:timezone", "@type": "sc:Text"}
        }
    ])
}

/// The WebFinger answer (RFC 7033 JRD) for `subject`.
pub fn webfinger(base: &Base, subject: &str) -> Value {
    json!({
        "subject": subject,
        "aliases": [base.actor()],
        "links": [
            {"rel": "self", "type": ACTIVITY_JSON, "href": base.actor()},
            {"rel": "http://webfinger.net/rel/profile-page", "type": "text/html",
             "href": format!("{}/", base.origin())}
        ]
    })
}

/// The actor document (SPEC R-API-42): an `Application` named
/// `campaigns`, with its inbox, outbox, collections and RSA public key.
pub fn actor(base: &Base, log_origin: &str, public_pem: &str) -> Value {
    json!({
        "@context": actor_context(),
        "id": base.actor(),
        "type": "Application",
        "preferredUsername": ACTOR_NAME,
        "name": format!("Campaigns on {log_origin}"),
        "summary": escape(&format!(
            "Announces the campaigns of the pledge log {log_origin}: opened, each step \
             1, 2, 5, 10, 20, 50… of people activated, goal reached, closed. Only \
             instances and groups may follow: this server keeps no list of people."
        )),
        "url": format!("{}/", base.origin()),
        "inbox": base.inbox(),
        "outbox": base.outbox(),
        "followers": base.followers(),
        "following": base.following(),
        "manuallyApprovesFollowers": false,
        "discoverable": true,
        "endpoints": {"sharedInbox": base.inbox()},
        "publicKey": {
            "id": base.key_id(),
            "owner": base.actor(),
            "publicKeyPem": public_pem
        }
    })
}

/// A collection that shows only its size (the followers, R-API-43; the
/// following, always 0).
pub fn counted_collection(id: &str, total: usize) -> Value {
    json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": id,
        "type": "OrderedCollection",
        "totalItems": total
    })
}

/// One announced event of a campaign, in the order the feed reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// The campaign opened: `Create`.
    Opened,
    /// `A` first reached this step: `Update`.
    Step(u64),
    /// `A` first reached the goal: `Update`.
    Goal,
    /// The CampaignClosed entry is in the log: `Update`.
    Closed,
}

impl Kind {
    /// The last path segment of the activity's id.
    pub fn slug(&self) -> String {
        match self {
            Self::Opened => "opened".into(),
            Self::Step(s) => format!("active-{s}"),
            Self::Goal => "goal".into(),
            Self::Closed => "closed".into(),
        }
    }
}

/// One activity of the outbox.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The activity's id (a URL under the public origin).
    pub id: String,
    /// Its time (Unix seconds: a whole hour, or the deadline for a close).
    pub published: u64,
    /// Ties of `published` are ordered by this, later events last.
    pub rank: u64,
    /// The activity.
    pub activity: Value,
}

/// `text` as HTML: escaped, line breaks as `<br>`.
fn html(text: &str) -> String {
    escape(text).replace("\r\n", "\n").replace('\n', "<br>")
}

/// The campaign's Event as of `kind` (SPEC R-API-42): its definition, and
/// a first paragraph saying what this event is.
fn event_object(base: &Base, c: &FeedCampaign<'_>, kind: &Kind, updated: u64) -> Value {
    let hex = c.id.to_hex();
    let page = base.page(&hex);
    let goal = u64::from(c.goal);
    let (news, status) = match kind {
        Kind::Opened => (
            "A new campaign of conditional pledges is open.".to_owned(),
            "TENTATIVE",
        ),
        Kind::Step(s) => (
            format!(
                "{s} people are activated: their condition is met (goal {goal}). Announced at \
                 the steps 1, 2, 5, 10, 20, 50…, not at every pledge."
            ),
            "TENTATIVE",
        ),
        Kind::Goal => (
            format!(
                "The goal of {goal} people activated is reached. The campaign succeeds if it \
                 is still reached at the deadline."
            ),
            "TENTATIVE",
        ),
        Kind::Closed => match c.closed {
            Some(o) if o.active >= goal => (
                format!(
                    "Closed: the goal was reached. Final active count {} (goal {goal}), {} \
                     live pledges: every activated pledger is on.",
                    o.active, o.live
                ),
                "CONFIRMED",
            ),
            Some(o) => (
                format!(
                    "Closed: the goal was not reached. Final active count {} (goal {goal}), \
                     {} live pledges: nobody is bound.",
                    o.active, o.live
                ),
                "CANCELLED",
            ),
            None => ("Closed.".to_owned(), "CANCELLED"),
        },
    };
    let mut content = format!("<p>{}</p>", html(&news));
    if !c.text.is_empty() {
        content.push_str(&format!("<p>{}</p>", html(c.text)));
    }
    content.push_str(&format!(
        "<p>Action: {}. Goal: {} people activated by the deadline, {} UTC. \"I act if at \
         least t people act, me included.\"</p><p>Pledge anonymously: <a href=\"{}\">{}</a></p>",
        html(c.action),
        c.goal,
        rfc3339(c.deadline),
        escape(&page),
        escape(&page)
    ));
    json!({
        "id": base.event(&hex),
        "type": "Event",
        "attributedTo": base.actor(),
        "name": c.title,
        "content": content,
        "mediaType": "text/html",
        // No action date is logged: the Event is the pledge window's end.
        "startTime": rfc3339(c.deadline),
        "endTime": rfc3339(c.deadline),
        "timezone": "UTC",
        "url": page,
        "joinMode": "external",
        "externalParticipationUrl": page,
        "commentsEnabled": false,
        "ical:status": status,
        "published": rfc3339(start_of(c.history.opened)),
        "updated": rfc3339(updated),
        "to": [PUBLIC],
        "cc": [base.followers()]
    })
}

/// The events announced for `c`, oldest first: (kind, time, rank).
fn events(c: &FeedCampaign<'_>) -> Vec<(Kind, u64, u64)> {
    let goal = u64::from(c.goal);
    let mut events: Vec<(Kind, u64, u64)> = vec![(Kind::Opened, start_of(c.history.opened), 0)];
    for s in &c.history.steps {
        if s.active == goal && c.history.goal.is_some() {
            continue;
        }
        events.push((Kind::Step(s.active), start_of(s.hour), s.active));
    }
    if let Some(h) = c.history.goal {
        events.push((Kind::Goal, start_of(h), goal));
    }
    if c.closed.is_some() {
        events.push((
            Kind::Closed,
            c.deadline.max(start_of(c.history.opened)),
            u64::MAX,
        ));
    }
    events.sort_by_key(|(_, t, rank)| (*t, *rank));
    events
}

/// The ids of [`campaign_activities`], without building the documents
/// (the delivery task's scan after every checkpoint).
pub fn campaign_activity_ids(base: &Base, c: &FeedCampaign<'_>) -> Vec<String> {
    let prefix = base.event(&c.id.to_hex());
    events(c)
        .into_iter()
        .map(|(kind, _, _)| format!("{prefix}/{}", kind.slug()))
        .collect()
}

/// Every activity announcing `c`, oldest first (SPEC R-API-42): `Create` at
/// its opening, `Update` at each step first reached (a step equal to the
/// goal is announced once, as the goal), at the goal, and at its close.
pub fn campaign_activities(base: &Base, c: &FeedCampaign<'_>) -> Vec<Announcement> {
    let events = events(c);
    let hex = c.id.to_hex();
    events
        .into_iter()
        .map(|(kind, t, rank)| {
            let id = format!("{}/{}", base.event(&hex), kind.slug());
            let verb = if kind == Kind::Opened {
                "Create"
            } else {
                "Update"
            };
            let object = event_object(base, c, &kind, t);
            let activity = json!({
                "@context": event_context(),
                "id": id,
                "type": verb,
                "actor": base.actor(),
                "published": rfc3339(t),
                "to": [PUBLIC],
                "cc": [base.followers()],
                "object": object
            });
            Announcement {
                id,
                published: t,
                rank,
                activity,
            }
        })
        .collect()
}

/// The campaign's Event as it stands now (the object of its latest
/// activity), with its `@context`, for `GET` of its id.
pub fn current_event(base: &Base, c: &FeedCampaign<'_>) -> Value {
    let mut acts = campaign_activities(base, c);
    let mut object = acts
        .pop()
        .and_then(|mut a| a.activity.get_mut("object").map(Value::take))
        .unwrap_or(Value::Null);
    if let Some(o) = object.as_object_mut() {
        o.insert("@context".into(), event_context());
    }
    object
}

/// The outbox (SPEC R-API-43): an `OrderedCollection` of every campaign's
/// activities, newest first, the newest [`MAX_OUTBOX_ITEMS`] listed.
pub fn outbox(base: &Base, mut all: Vec<Announcement>) -> Value {
    all.sort_by(|a, b| {
        b.published
            .cmp(&a.published)
            .then(b.rank.cmp(&a.rank))
            .then(a.id.cmp(&b.id))
    });
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .take(MAX_OUTBOX_ITEMS)
        .map(|mut a| {
            if let Some(o) = a.activity.as_object_mut() {
                o.remove("@context");
            }
            a.activity
        })
        .collect();
    json!({
        "@context": event_context(),
        "id": base.outbox(),
        "type": "OrderedCollection",
        "totalItems": total,
        "orderedItems": items
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use pledge_protocol::hash::CampaignId;

    use super::*;
    use crate::feed::{FeedHistory, Outcome};

    const T0: u64 = 1_796_551_200;

    #[test]
    fn the_public_url_is_an_https_origin() {
        let b = Base::parse("https://pledge.example/").unwrap();
        assert_eq!(b.origin(), "https://pledge.example");
        assert_eq!(b.authority(), "pledge.example");
        assert_eq!(b.actor(), "https://pledge.example/ap/actor");
        let b = Base::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(b.authority(), "127.0.0.1:8080");
        for bad in [
            "http://pledge.example",
            "https://pledge.example/sub",
            "https://u:p@pledge.example",
            "https://pledge.example/?q",
            "ftp://pledge.example",
            "pledge.example",
        ] {
            assert!(Base::parse(bad).is_err(), "{bad}");
        }
    }

    /// SPEC R-API-42: the same events as the feed, oldest first, the first
    /// a `Create`, the others `Update`s of the same Event; times on the hour.
    #[test]
    fn activities_follow_the_feed_events() {
        let base = Base::parse("https://p.example").unwrap();
        let h = FeedHistory::opened(T0)
            .advance(2, 10, T0 + 3600)
            .unwrap()
            .advance(12, 10, T0 + 7200)
            .unwrap();
        let mut c = FeedCampaign {
            id: CampaignId::from_hex(&"ab".repeat(32)).unwrap(),
            title: "Walk <out>",
            text: "Line & one\ntwo",
            action: "walk out",
            goal: 10,
            deadline: T0 + 86_400 + 17,
            original_deadline: None,
            history: &h,
            closed: None,
        };
        let acts = campaign_activities(&base, &c);
        assert_eq!(
            campaign_activity_ids(&base, &c),
            acts.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
        );
        let slugs: Vec<&str> = acts
            .iter()
            .map(|a| a.id.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            slugs,
            ["opened", "active-1", "active-2", "active-5", "goal"]
        );
        assert_eq!(acts[0].activity["type"], "Create");
        assert!(acts[1..].iter().all(|a| a.activity["type"] == "Update"));
        let o = &acts[0].activity["object"];
        assert_eq!(o["type"], "Event");
        assert_eq!(
            o["id"],
            format!("https://p.example/ap/campaigns/{}", "ab".repeat(32))
        );
        assert_eq!(o["name"], "Walk <out>");
        assert_eq!(o["joinMode"], "external");
        assert_eq!(o["externalParticipationUrl"], o["url"]);
        assert_eq!(o["startTime"], "2026-12-07T10:00:17Z");
        let content = o["content"].as_str().unwrap();
        assert!(content.contains("Line &amp; one<br>two"), "{content}");
        assert!(!content.contains("<out>"));
        assert!(acts.iter().all(|a| {
            a.activity["published"]
                .as_str()
                .unwrap()
                .ends_with(":00:00Z")
        }));
        c.closed = Some(Outcome { active: 9, live: 9 });
        let acts = campaign_activities(&base, &c);
        let last = acts.last().unwrap();
        assert!(last.id.ends_with("/closed"));
        assert_eq!(last.activity["object"]["ical:status"], "CANCELLED");
        assert_eq!(current_event(&base, &c)["ical:status"], "CANCELLED");
        let ob = outbox(&base, acts.clone());
        assert_eq!(ob["totalItems"], 6);
        assert_eq!(ob["orderedItems"][0]["id"], last.id);
    }
}
