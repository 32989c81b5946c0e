//! Loads an example `oncall:` section (two schedules in two zones, one policy) and
//! checks the answers at several instants, through the public API only.

use day2_oncall::escalation::{next_due, steps_due};
use day2_oncall::schedule::{LayerRef, shifts, who_is_on_call};
use day2_oncall::{ContactMethod, OnCall, SecretRef, UserId, who};
use jiff::{SignedDuration, Timestamp};

fn load() -> OnCall {
    OnCall::parse_document(include_str!("data/oncall.yml"), "oncall.yml").unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn on_call(oc: &OnCall, schedule: &str, at: &str) -> Option<String> {
    who_is_on_call(oc.schedule(schedule).unwrap(), ts(at)).map(|u| u.0)
}

#[test]
fn users_and_contact_methods() {
    let oc = load();
    assert_eq!(oc.users.len(), 6);
    let bob = oc.user("bob").unwrap();
    assert_eq!(bob.name, "Bob Brandt");
    assert_eq!(
        bob.contact_methods,
        vec![
            ContactMethod::Slack {
                webhook_url: SecretRef::Env("BOB_SLACK_WEBHOOK".into())
            },
            ContactMethod::Email("bob@example.com".into()),
        ]
    );
    assert_eq!(
        oc.user("erin").unwrap().contact_methods,
        vec![ContactMethod::Email("erin@example.com".into())]
    );
    assert!(matches!(
        &oc.user("dan").unwrap().contact_methods[0],
        ContactMethod::Webhook { bearer_token: Some(SecretRef::Env(n)), .. } if n == "PAGER_TOKEN"
    ));
}

#[test]
fn berlin_primary_at_several_instants() {
    let oc = load();
    let p = "berlin-primary";
    // Monday 2026-03-02, week 0 of the 24x7 layer (alice); CET = UTC+1
    assert_eq!(
        on_call(&oc, p, "2026-03-02T07:59:00Z"),
        None,
        "before the start"
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-02T08:00:00Z").as_deref(),
        Some("erin")
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-02T16:00:00Z").as_deref(),
        Some("alice")
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-03T10:00:00Z").as_deref(),
        Some("alice"),
        "business day 1"
    );
    // Saturday of week 1 (bob)
    assert_eq!(
        on_call(&oc, p, "2026-03-14T12:00:00Z").as_deref(),
        Some("bob")
    );
    // Wednesday 2026-03-25 of week 3 (alice again): business layer day 23 -> alice;
    // override 12:00-14:00 local -> lead
    assert_eq!(
        on_call(&oc, p, "2026-03-25T10:59:00Z").as_deref(),
        Some("alice")
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-25T11:00:00Z").as_deref(),
        Some("lead")
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-25T13:00:00Z").as_deref(),
        Some("alice")
    );
    // Sunday 2026-03-29, the spring-forward night: still week 3 (alice) until Monday
    // 09:00 CEST = 07:00Z, when bob's week starts
    assert_eq!(
        on_call(&oc, p, "2026-03-30T06:59:59Z").as_deref(),
        Some("alice")
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-30T07:00:00Z").as_deref(),
        Some("erin"),
        "business hours start"
    );
    assert_eq!(
        on_call(&oc, p, "2026-03-30T15:00:00Z").as_deref(),
        Some("bob"),
        "17:00 CEST"
    );

    let s = oc.schedule(p).unwrap();
    let week = shifts(s, ts("2026-03-28T00:00:00Z"), ts("2026-03-31T00:00:00Z"));
    let got: Vec<_> = week
        .iter()
        .map(|x| (x.user.as_str(), x.start, x.end, x.layer))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "alice",
                ts("2026-03-28T00:00:00Z"),
                ts("2026-03-30T07:00:00Z"),
                LayerRef::Layer(0)
            ),
            (
                "erin",
                ts("2026-03-30T07:00:00Z"),
                ts("2026-03-30T15:00:00Z"),
                LayerRef::Layer(1)
            ),
            (
                "bob",
                ts("2026-03-30T15:00:00Z"),
                ts("2026-03-31T00:00:00Z"),
                LayerRef::Layer(0)
            ),
        ]
    );
}

#[test]
fn ny_secondary_across_dst() {
    let oc = load();
    let n = "ny-secondary";
    // EST (UTC-5) until 2026-03-08 02:00, then EDT (UTC-4); handoff 08:00 local
    assert_eq!(
        on_call(&oc, n, "2026-03-01T13:00:00Z").as_deref(),
        Some("dan")
    );
    assert_eq!(
        on_call(&oc, n, "2026-03-02T13:00:00Z").as_deref(),
        Some("lead")
    );
    let s = oc.schedule(n).unwrap();
    let sh = shifts(s, ts("2026-03-07T13:00:00Z"), ts("2026-03-09T12:00:00Z"));
    assert_eq!(sh[0].end, ts("2026-03-08T12:00:00Z"));
    assert_eq!(
        sh[0].end.duration_since(sh[0].start),
        SignedDuration::from_hours(23)
    );
    let sh = shifts(s, ts("2026-10-31T12:00:00Z"), ts("2026-11-02T13:00:00Z"));
    assert_eq!(sh[0].end, ts("2026-11-01T13:00:00Z"));
    assert_eq!(
        sh[0].end.duration_since(sh[0].start),
        SignedDuration::from_hours(25)
    );
}

#[test]
fn who_answers_for_every_schedule() {
    let oc = load();
    let at = ts("2026-03-25T11:30:00Z");
    let got = who::who(&oc, at, None).unwrap();
    let lines: Vec<String> = got.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        lines,
        vec![
            "berlin-primary: lead (since 2026-03-25T11:00:00Z, until 2026-03-25T13:00:00Z)",
            // 2026-03-24 08:00 EDT (12:00Z) starts day 23 since 2026-03-01: lead
            "ny-secondary: lead (since 2026-03-24T12:00:00Z, until 2026-03-25T12:00:00Z)",
        ]
    );
    let one = who::who(&oc, at, Some("ny-secondary")).unwrap();
    assert_eq!(one.len(), 1);
    assert!(who::who(&oc, at, Some("nope")).is_err());
}

#[test]
fn escalation_of_an_alert() {
    let oc = load();
    let policy = oc.policy("sev1").unwrap();
    // triggered Wednesday 2026-03-25 11:50Z (12:50 CET, in the override; 07:50 in NY)
    let t = ts("2026-03-25T11:50:00Z");
    let min = SignedDuration::from_mins;

    let due = steps_due(&oc, policy, t, t, None);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].users, vec![UserId::from("lead")]);
    assert_eq!(next_due(policy, t, t, None), Some(t + min(15)));

    // step 2 at 12:05Z: ny-secondary handed off at 12:00Z (08:00 EDT) from lead to dan
    let due = steps_due(&oc, policy, t, t + min(15), None);
    assert_eq!(
        due[1].users,
        vec![UserId::from("dan"), UserId::from("lead")]
    );
    assert_eq!((due[1].round, due[1].step_index), (1, 1));

    // no ack: round 2 at +45m and +60m, then nothing
    let due = steps_due(&oc, policy, t, t + min(60), None);
    let plan: Vec<_> = due.iter().map(|d| (d.round, d.step_index, d.at)).collect();
    assert_eq!(
        plan,
        vec![
            (1, 0, t),
            (1, 1, t + min(15)),
            (2, 0, t + min(45)),
            (2, 1, t + min(60)),
        ]
    );
    // round 2 step 1 at 12:35Z (13:35 CET): still inside the override (until 14:00 CET)
    assert_eq!(due[2].users, vec![UserId::from("lead")]);
    // round 2 step 2 at 12:50Z: alice (business hours) is on berlin-primary, but this
    // step pages ny-secondary (dan) and the lead
    assert_eq!(
        due[3].users,
        vec![UserId::from("dan"), UserId::from("lead")]
    );
    assert_eq!(next_due(policy, t, t + min(60), None), None);

    // acknowledged after 10 minutes: step 2 never fires, nothing more is due
    let ack = Some(t + min(10));
    assert_eq!(steps_due(&oc, policy, t, t + min(120), ack).len(), 1);
    assert_eq!(next_due(policy, t, t + min(11), ack), None);
}
