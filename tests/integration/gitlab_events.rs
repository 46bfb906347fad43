//! GitLab's payload shapes (tests/data/gitlab) read into the events the bot acts on.

use kubeward::forge::gitlab::events::{
    Command, GitLabEvent, MERGE_REQUEST_HOOK, MergeRequestAction, NOTE_HOOK, NoteAction,
    parse_delivery,
};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/gitlab/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("payload file")
}

fn merge_request(name: &str) -> kubeward::forge::gitlab::events::MergeRequestEvent {
    let delivery = parse_delivery(MERGE_REQUEST_HOOK, &data(name)).expect("valid");
    assert_eq!(delivery.project.as_ref().map(|p| p.id), Some(4242));
    match delivery.event {
        GitLabEvent::MergeRequest(mr) => mr,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn merge_request_events() {
    let open = merge_request("merge_request_open.json");
    assert_eq!(open.iid, 7, "the iid, not the global id");
    assert_eq!(open.action, MergeRequestAction::Open);
    assert_eq!(open.review_trigger(), Some("open"));
    assert_eq!(
        open.head_sha.as_deref(),
        Some("4f2c1e0a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e")
    );
    assert_eq!(
        open.project.path_with_namespace.as_deref(),
        Some("platform/shop")
    );

    let push = merge_request("merge_request_update_push.json");
    assert_eq!(
        push.review_trigger(),
        Some("push"),
        "oldrev present: code changed"
    );

    let title = merge_request("merge_request_update_title.json");
    assert!(matches!(title.action, MergeRequestAction::Update(_)));
    assert_eq!(title.review_trigger(), None, "no oldrev: nothing to review");

    let close = merge_request("merge_request_close.json");
    assert!(close.is_finished());
    assert_eq!(close.review_trigger(), None);
}

#[test]
fn merge_request_comment_events() {
    let delivery = parse_delivery(NOTE_HOOK, &data("note_merge_request.json")).expect("valid");
    let GitLabEvent::Note(note) = delivery.event else {
        panic!("not a note");
    };
    assert_eq!(note.action, NoteAction::Create);
    assert_eq!(note.merge_request_iid, Some(7));
    assert_eq!(note.note_id, 5511);
    assert_eq!(note.author_id, Some(44));
    assert_eq!(note.author_username.as_deref(), Some("mo"));
    assert_eq!(note.command(), Some(Command::Rescan));
}

#[test]
fn the_event_header_decides_with_object_kind() {
    // A Merge Request Hook body under another header (a system hook, a mislabelled test) is not
    // acted on.
    let delivery = parse_delivery("System Hook", &data("merge_request_open.json")).expect("json");
    assert!(matches!(delivery.event, GitLabEvent::Other { .. }));
    let delivery = parse_delivery(NOTE_HOOK, &data("merge_request_open.json")).expect("json");
    assert!(matches!(delivery.event, GitLabEvent::Other { .. }));
}

#[test]
fn gitlabs_documented_examples_parse_into_the_events_we_act_on() {
    // The payload examples of GitLab's webhook_events.md, copied unchanged (see tests/data/README.md).
    let delivery = parse_delivery(MERGE_REQUEST_HOOK, &data("docs_merge_request.json"))
        .expect("the documented merge request event parses");
    assert_eq!(
        delivery.project.as_ref().map(|p| p.id),
        Some(1),
        "project.id"
    );
    let GitLabEvent::MergeRequest(mr) = delivery.event else {
        panic!("not a merge request event: {:?}", delivery.event);
    };
    assert_eq!(mr.project.id, 1);
    assert_eq!(
        mr.project.path_with_namespace.as_deref(),
        Some("gitlabhq/gitlab-test")
    );
    assert_eq!(mr.iid, 1, "object_attributes.iid, not the global id 99");
    assert_eq!(mr.action, MergeRequestAction::Open);
    assert_eq!(mr.review_trigger(), Some("open"));
    assert!(!mr.is_finished());
    assert_eq!(
        mr.head_sha.as_deref(),
        Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
    );
    assert_eq!(mr.username.as_deref(), Some("root"));

    let delivery = parse_delivery(NOTE_HOOK, &data("docs_note_merge_request.json"))
        .expect("the documented merge request comment parses");
    assert_eq!(
        delivery.project.as_ref().map(|p| p.id),
        Some(5),
        "project.id"
    );
    let GitLabEvent::Note(note) = delivery.event else {
        panic!("not a note: {:?}", delivery.event);
    };
    assert_eq!(note.project.id, 5);
    assert_eq!(
        note.project.path_with_namespace.as_deref(),
        Some("gitlab-org/gitlab-test")
    );
    assert_eq!(note.note_id, 1244);
    assert_eq!(note.action, NoteAction::Create);
    assert!(!note.system);
    assert_eq!(note.noteable_type, "MergeRequest");
    assert_eq!(
        note.merge_request_iid,
        Some(1),
        "merge_request.iid, not noteable_id 7"
    );
    assert_eq!(note.body, "This MR needs work.");
    assert_eq!(note.author_id, Some(1));
    assert_eq!(note.author_username.as_deref(), Some("root"));
    assert_eq!(note.command(), None, "a plain comment is no command");
}
