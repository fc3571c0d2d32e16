//! Attacks on the controller, one test each, as docs/security.md's threat table lists them.
//! Each asserts what must NOT happen (no new reader, no plaintext, no write), not only that
//! the honest path works. Readers are asked of the `age` crate and the stock `age` CLI, never
//! read from `spec.recipients`, which is clear text anyone can edit.

mod support;

use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use sealant_controller::http::{HttpState, router};
use sealant_controller::metrics::Metrics;
use sealant_controller::state::{KeysView, Readiness, SharedKeys};
use sealant_core::SealedSecret;
use sealant_core::keys::{Identity, Recipient, generate_key};
use sealant_core::keystore::{
    KeySet, KeyState, STATE_LABEL, StoredKey, new_key_secret, parse_key_secret,
};
use support::{readers, stored_key};
use tower::ServiceExt;

const DB: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: hunter2\n  username: admin\n";

/// A cluster that rotated from `old` to `new`, a break-glass key and another cluster that the
/// value was also sealed to, and an attacker who holds only its own key.
struct World {
    old: StoredKey,
    new: StoredKey,
    glass: Identity,
    other_cluster: Identity,
    attacker: Identity,
}

impl World {
    fn new() -> World {
        World {
            old: stored_key("sealant-key-old", "2026-01-01T00:00:00Z", KeyState::Retired),
            new: stored_key("sealant-key-new", "2026-02-01T00:00:00Z", KeyState::Active),
            glass: generate_key("t").identity,
            other_cluster: generate_key("t").identity,
            attacker: generate_key("t").identity,
        }
    }

    /// Every key in play, by name, for [`readers`].
    fn everyone(&self) -> Vec<(&'static str, Identity)> {
        vec![
            ("old", self.old.identity.clone()),
            ("new", self.new.identity.clone()),
            ("glass", self.glass.clone()),
            ("other-cluster", self.other_cluster.clone()),
            ("attacker", self.attacker.clone()),
        ]
    }

    /// `DB` sealed as a user would: to the cluster's old key, break-glass and another cluster.
    fn sealed_in_git(&self) -> SealedSecret {
        seal(&[
            self.old.identity.to_public(),
            self.glass.to_public(),
            self.other_cluster.to_public(),
        ])
    }

    fn router(&self) -> axum::Router {
        let keys = KeySet::new(vec![self.old.clone(), self.new.clone()]);
        let state = HttpState::new(
            SharedKeys::new(KeysView::new(keys)),
            Arc::new(Metrics::new()),
            Arc::new(Readiness::default()),
            100,
        );
        router(state)
    }
}

fn seal(recipients: &[Recipient]) -> SealedSecret {
    support::seal_strict(DB, recipients)
}

async fn reencrypt(router: &axum::Router, sealed: &SealedSecret) -> (StatusCode, String) {
    let request = Request::post("/v1/reencrypt")
        .body(Body::from(serde_json::to_vec(sealed).unwrap()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Who the stock `age` CLI lets open `ciphertext`, among `keys` (a second, independent
/// implementation of the same check as [`readers`]).
fn stock_age_readers<'a>(ciphertext: &str, keys: &'a [(&'a str, Identity)]) -> Vec<&'a str> {
    use age::secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value.age");
    std::fs::write(&file, BASE64.decode(ciphertext).unwrap()).unwrap();
    keys.iter()
        .filter(|(name, identity)| {
            let key = dir.path().join(format!("{name}.txt"));
            std::fs::write(&key, identity.to_string().expose_secret()).unwrap();
            Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(&key)
                .arg(&file)
                .output()
                .expect("the stock age CLI (Debian package age) runs")
                .status
                .success()
        })
        .map(|(name, _)| *name)
        .collect()
}

/// Issue 11 §1, the decryption oracle: an attacker appends its own recipient to every record
/// of a SealedSecret from Git and asks the controller to re-encrypt it. The record no longer
/// matches the value's stanzas: refused, and nothing sealed comes back.
#[tokio::test]
async fn reencrypt_refuses_a_recipient_appended_to_the_record() {
    let world = World::new();
    let mut sealed = world.sealed_in_git();
    for record in sealed.spec.recipients.values_mut() {
        record.push(world.attacker.to_public().to_string());
    }
    let (status, body) = reencrypt(&world.router(), &sealed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains(
            "records 4 recipients in spec.recipients but its header holds 3 X25519 stanzas"
        ),
        "{body}"
    );
    assert!(
        !body.contains("YWdlLWVuY3J5cHRpb24ub3JnL3Yx"),
        "no sealed value comes back"
    );
}

/// The same attack with the record's length kept: the attacker's recipient replaces the
/// break-glass entry. The controller never seals to a recorded recipient, so the reply opens
/// for the active key and the value's real other readers, and not for the attacker.
#[tokio::test]
async fn reencrypt_reply_does_not_open_for_a_recipient_swapped_into_the_record() {
    let world = World::new();
    let mut sealed = world.sealed_in_git();
    let attacker = world.attacker.to_public().to_string();
    for record in sealed.spec.recipients.values_mut() {
        record[1] = attacker.clone();
    }
    let (status, body) = reencrypt(&world.router(), &sealed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: SealedSecret = serde_json::from_str(&body).unwrap();
    let everyone = world.everyone();
    for (item, value) in &reply.spec.encrypted_data {
        assert_eq!(
            readers(value, &everyone),
            ["new", "glass", "other-cluster"],
            "{item}: readers per the age crate"
        );
        assert_eq!(
            stock_age_readers(value, &everyone),
            ["new", "glass", "other-cluster"],
            "{item}: readers per the stock age CLI"
        );
        // The record keeps, by position, the entries of the kept stanzas: the attacker's
        // edit stays a (false) hint, and gains it nothing.
        assert_eq!(
            reply.spec.recipients[item],
            [
                world.new.recipient.clone(),
                attacker.clone(),
                world.other_cluster.to_public().to_string()
            ]
        );
    }
}

/// The invariant behind both: readers(reply) = active ∪ (readers(original) − this cluster's
/// keys), checked on values sealed to every mix of the keys in play, by the age crate and
/// the stock age CLI; the payload is kept byte for byte (only the header changes).
#[tokio::test]
async fn reencrypt_reply_readers_are_the_active_key_and_the_original_other_readers() {
    let world = World::new();
    let router = world.router();
    let everyone = world.everyone();
    let pool = [
        ("old", world.old.identity.to_public()),
        ("new", world.new.identity.to_public()),
        ("glass", world.glass.to_public()),
        ("other-cluster", world.other_cluster.to_public()),
    ];
    // Every non-empty subset that this cluster can open (it holds old and new).
    for mask in 1u32..16 {
        let chosen: Vec<_> = pool
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, p)| p)
            .collect();
        if !chosen.iter().any(|(n, _)| *n == "old" || *n == "new") {
            continue;
        }
        let recipients: Vec<Recipient> = chosen.iter().map(|(_, r)| r.clone()).collect();
        let sealed = seal(&recipients);
        let (status, body) = reencrypt(&router, &sealed).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let reply: SealedSecret = serde_json::from_str(&body).unwrap();
        let mut expected = vec!["new"];
        expected.extend(
            chosen
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| *n == "glass" || *n == "other-cluster"),
        );
        for (item, value) in &reply.spec.encrypted_data {
            let original = &sealed.spec.encrypted_data[item];
            assert_eq!(readers(value, &everyone), expected, "mask {mask} {item}");
            assert_eq!(
                stock_age_readers(value, &everyone),
                expected,
                "mask {mask} {item}"
            );
            assert_eq!(
                payload_of(value),
                payload_of(original),
                "mask {mask} {item}: the payload is not re-encrypted"
            );
        }
    }
}

/// The age payload: everything after the header's MAC line.
fn payload_of(ciphertext: &str) -> Vec<u8> {
    let file = BASE64.decode(ciphertext).unwrap();
    let mac_line = file
        .windows(4)
        .position(|w| w == b"\n---")
        .expect("an age header ends with ---");
    let end = file[mac_line + 1..]
        .iter()
        .position(|b| *b == b'\n')
        .unwrap();
    file[mac_line + 1 + end + 1..].to_vec()
}

/// Someone who may create SealedSecrets in the controller's own namespace seals their own age
/// identity as `key.txt`, with a template asking for the key labels: were the Secret the
/// controller writes from it read as a key, the cluster would seal to the attacker. Two
/// defences, each tested alone: the template's key labels are stripped (`desired_secret`),
/// and the key reader (`key_set`, behind the key watch and `rotate`) skips every Secret a
/// SealedSecret generated, by its managed-by label or its SealedSecret owner, even when key
/// labels are on it.
#[test]
fn a_sealed_secret_cannot_plant_a_key() {
    use sealant_controller::keys::key_set;
    use sealant_core::convert::unseal;
    use sealant_core::keys::KeyRing;
    use sealant_core::keystore::{CREATED_ANNOTATION, KEY_LABEL};
    use sealant_core::reconcile::{MANAGED_BY_LABEL, desired_secret};

    let world = World::new();
    let planted = generate_key("2099-01-01T00:00:00Z");
    let key_text: String = planted
        .file_text
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n  namespace: sealant-system\n  labels:\n    {KEY_LABEL}: 'true'\n    {STATE_LABEL}: active\n  annotations:\n    {CREATED_ANNOTATION}: '2099-01-01T00:00:00Z'\nstringData:\n  key.txt: |\n{key_text}"
    );
    let mut sealed = support::seal_strict(&yaml, &[world.new.identity.to_public()]);
    sealed.metadata.uid = Some("planted-uid".into());
    let ring = KeyRing::from_identities([world.new.identity.clone()]);
    let written = desired_secret(&sealed, &unseal(&sealed, &ring).unwrap());

    let (genuine, _) = new_key_secret("sealant-system", "2026-02-01T00:00:00Z".parse().unwrap());
    let mut genuine = genuine;
    genuine.metadata.name = Some("sealant-key-genuine".into());
    let genuine_recipient = parse_key_secret(&genuine).unwrap().recipient;
    let attacker = planted.recipient.to_string();
    let loaded = |secrets: &[&k8s_openapi::api::core::v1::Secret]| -> Vec<String> {
        key_set(secrets.iter().map(|s| Arc::new((*s).clone())))
            .keys()
            .iter()
            .map(|k| k.recipient.clone())
            .collect()
    };

    // As the controller writes it: no key label survives, so the key watch never lists it.
    let labels = written.metadata.labels.clone().unwrap_or_default();
    assert!(
        !labels.keys().any(|k| k.starts_with(KEY_LABEL)),
        "{labels:?}"
    );
    let only_genuine = vec![genuine_recipient];
    assert_eq!(loaded(&[&written, &genuine]), only_genuine);

    // Were the labels to get through anyway: still not a key, by either mark alone.
    let mut relabelled = written.clone();
    let labels = relabelled.metadata.labels.get_or_insert_default();
    labels.insert(KEY_LABEL.into(), "true".into());
    labels.insert(STATE_LABEL.into(), "active".into());
    relabelled
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(CREATED_ANNOTATION.into(), "2099-01-01T00:00:00Z".into());
    assert_eq!(loaded(&[&relabelled, &genuine]), only_genuine);
    // keep-on-delete: no owner reference, only the managed-by label.
    let mut label_only = relabelled.clone();
    label_only.metadata.owner_references = None;
    assert_eq!(
        loaded(&[&label_only]),
        Vec::<String>::new(),
        "managed-by label alone"
    );
    let mut owner_only = relabelled.clone();
    owner_only
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(MANAGED_BY_LABEL.0);
    assert_eq!(loaded(&[&owner_only]), Vec::<String>::new(), "owner alone");
    // The control: with neither mark, the very same Secret is a loadable key, so the
    // assertions above hold because of the filter, not because the key is malformed.
    let mut bare = owner_only;
    bare.metadata.owner_references = None;
    assert_eq!(loaded(&[&bare]), [attacker]);
}
