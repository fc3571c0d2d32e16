//! Every repeatable flag of `seal`, through the real binary: where a comma can be data (item
//! values, paths) it is kept whole, as kubectl keeps it; only recipients and item keys, which
//! never hold a comma, may also be given comma-separated.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use support::{Sandbox, secret_yaml};

/// The items of the SealedSecrets in `file`, opened with `identity`: key → plaintext bytes.
fn opened(sb: &Sandbox, identity: &str, file: &str) -> Vec<(String, Vec<u8>)> {
    let secret = sb.unseal_json(identity, file);
    let data: &Map<String, Value> = secret["data"].as_object().unwrap();
    let mut items: Vec<_> = data
        .iter()
        .map(|(k, v)| (k.clone(), STANDARD.decode(v.as_str().unwrap()).unwrap()))
        .collect();
    items.sort();
    items
}

/// The SealedSecrets in `file`, opened with `identity`, hold exactly the items `expected`.
#[track_caller]
fn assert_opens(sb: &Sandbox, identity: &str, file: &str, expected: &[(&str, &str)]) {
    assert_eq!(opened(sb, identity, file), items(expected));
}

fn items(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn a_comma_in_a_literal_is_data_not_a_separator() {
    let (sb, r) = Sandbox::with_key("k.txt");
    // Split on commas, "dsn=host=a,port=5" became two items (dsn=host=a and port=5) with
    // exit 0, and "password=p,ss" sealed "p".
    sb.seal(&[
        "create",
        "db",
        "-n",
        "prod",
        "--from-literal",
        "dsn=host=a,port=5",
        "--from-literal",
        "password=p,ss",
        "-r",
        &r,
        "-w",
        "db.yaml",
    ])
    .ok();
    assert_opens(
        &sb,
        "k.txt",
        "db.yaml",
        &[("dsn", "host=a,port=5"), ("password", "p,ss")],
    );

    // The environment variable holds one item, commas included.
    sb.seal_with(
        &["create", "db", "-n", "prod", "-r", &r, "-w", "env.yaml"],
        None,
        &[("SEAL_FROM_LITERAL", "dsn=host=a,port=5")],
    )
    .ok();
    assert_opens(&sb, "k.txt", "env.yaml", &[("dsn", "host=a,port=5")]);

    // `merge` takes the same flag: one new item, the existing ones untouched.
    sb.seal(&["merge", "db.yaml", "--from-literal", "list=a,b=c", "-r", &r])
        .ok();
    assert_opens(
        &sb,
        "k.txt",
        "db.yaml",
        &[
            ("dsn", "host=a,port=5"),
            ("list", "a,b=c"),
            ("password", "p,ss"),
        ],
    );
}

#[test]
fn a_comma_in_a_from_file_path_is_part_of_the_path() {
    let (sb, r) = Sandbox::with_key("k.txt");
    // Decoys: a split of "cert=a,b.pem" would read "a" as cert and add an item b.pem.
    sb.write("a", "decoy a");
    sb.write("b.pem", "decoy b");
    sb.write("a,b.pem", "the real cert");
    sb.write("dir,x/pw", "p,ss\n");
    sb.seal(&[
        "create",
        "tls",
        "-n",
        "web",
        "--from-file",
        "cert=a,b.pem",
        "--from-file",
        "dir,x/pw",
        "-r",
        &r,
        "-w",
        "tls.yaml",
    ])
    .ok();
    assert_opens(
        &sb,
        "k.txt",
        "tls.yaml",
        &[("cert", "the real cert"), ("pw", "p,ss\n")],
    );

    sb.seal_with(
        &["create", "tls", "-n", "web", "-r", &r, "-w", "env.yaml"],
        None,
        &[("SEAL_FROM_FILE", "cert=a,b.pem")],
    )
    .ok();
    assert_opens(&sb, "k.txt", "env.yaml", &[("cert", "the real cert")]);

    sb.seal(&[
        "merge",
        "tls.yaml",
        "--from-file",
        "b.pem=a,b.pem",
        "-r",
        &r,
    ])
    .ok();
    assert_opens(
        &sb,
        "k.txt",
        "tls.yaml",
        &[
            ("b.pem", "the real cert"),
            ("cert", "the real cert"),
            ("pw", "p,ss\n"),
        ],
    );

    // With no KEY the file name is the key, and a comma is no valid key: refused, nothing read
    // from "a" or "b.pem".
    sb.create_x_in_web(&["--from-file", "a,b.pem"], &r)
        .fails(1, "item key 'a,b.pem' is not valid");
}

#[test]
fn a_comma_in_a_recipients_file_or_identity_path_is_part_of_the_path() {
    let sb = Sandbox::new();
    let a = sb.keygen("team,a.key");
    let b = sb.keygen("b.key");
    sb.write("team,prod.txt", &format!("{a}\n"));
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x,y")]));

    sb.seal(&["-R", "team,prod.txt", "s.yaml", "-w", "flag.yaml"])
        .ok();
    sb.seal_with(
        &["s.yaml", "-w", "env.yaml"],
        None,
        &[("SEAL_RECIPIENTS_FILE", "team,prod.txt")],
    )
    .ok();
    for file in ["flag.yaml", "env.yaml"] {
        assert_eq!(
            opened(&sb, "team,a.key", file),
            items(&[("pw", "x,y")]),
            "{file}"
        );
        sb.seal(&["unseal", "-i", "b.key", file]).fails(
            1,
            &format!("was sealed to {a}; none of those keys is held here"),
        );
    }

    // -i is repeatable, and SEAL_IDENTITY names one file, commas included.
    sb.seal(&["-r", &b, "s.yaml", "-w", "b.yaml"]).ok();
    for file in ["flag.yaml", "b.yaml"] {
        sb.seal(&["unseal", "-i", "team,a.key", "-i", "b.key", file])
            .ok();
    }
    let out = sb
        .seal_with(
            &["unseal", "flag.yaml"],
            None,
            &[("SEAL_IDENTITY", "team,a.key")],
        )
        .ok();
    assert!(out.stdout.contains("pw: eCx5"), "{}", out.stdout);
}

#[test]
fn recipients_may_be_repeated_or_comma_separated() {
    let (sb, a) = Sandbox::with_key("a.key");
    let b = sb.keygen("b.key");
    sb.write("s.yaml", &secret_yaml("db", "prod", &[("pw", "x")]));
    let both = format!("{a},{b}");
    let spaced = format!("{a}, {b}");
    sb.seal(&["-r", &a, "-r", &b, "s.yaml", "-w", "repeated.yaml"])
        .ok();
    sb.seal(&["-r", &both, "s.yaml", "-w", "commas.yaml"]).ok();
    sb.seal(&["-r", &spaced, "s.yaml", "-w", "spaced.yaml"])
        .ok();
    sb.seal_with(
        &["s.yaml", "-w", "env.yaml"],
        None,
        &[("SEAL_RECIPIENTS", &both)],
    )
    .ok();
    for file in ["repeated.yaml", "commas.yaml", "spaced.yaml", "env.yaml"] {
        for key in ["a.key", "b.key"] {
            assert_eq!(
                opened(&sb, key, file),
                items(&[("pw", "x")]),
                "{file} {key}"
            );
        }
    }
    // A bad one among them is named on its own.
    sb.seal(&["-r", &format!("{a},age1nope"), "s.yaml"])
        .fails(1, "-r: 'age1nope' is not an age X25519 recipient");
}

#[test]
fn items_to_remove_may_be_repeated_or_comma_separated() {
    let (sb, r) = Sandbox::with_key("k.txt");
    let all = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")];
    sb.seal_db(&r, &all, "db.yaml");

    sb.seal(&["merge", "db.yaml", "--remove", "a", "--remove", "b"])
        .ok();
    sb.seal(&["merge", "db.yaml", "--remove", "c,d"]).ok();
    assert_opens(&sb, "k.txt", "db.yaml", &[("e", "5")]);

    sb.seal(&["-r", &r, "s.yaml", "-w", "db.yaml"]).ok();
    sb.seal_with(&["merge", "db.yaml"], None, &[("SEAL_REMOVE", "a,b,c,d")])
        .ok();
    assert_opens(&sb, "k.txt", "db.yaml", &[("e", "5")]);

    // One missing key refuses the whole change.
    sb.fails_leaving(
        "db.yaml",
        &["merge", "db.yaml", "--remove", "e,zzz"],
        1,
        "no item 'zzz'",
    );
}

#[test]
fn help_says_which_flags_take_commas_as_data() {
    let sb = Sandbox::new();
    let create = sb.seal(&["create", "--help"]).ok().stdout;
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let create = flat(&create);
    for claim in [
        "the value is taken whole, commas included (as kubectl does)",
        "the path is taken whole, commas included",
        "each value is one path, commas included",
        "Several may also be separated by commas (as in SEAL_RECIPIENTS): an age1… recipient never holds one",
    ] {
        assert!(create.contains(claim), "create --help lacks {claim:?}");
    }
    let merge = flat(&sb.seal(&["merge", "--help"]).ok().stdout);
    assert!(
        merge.contains(
            "several may also be separated by commas (as in SEAL_REMOVE): an item key never holds one"
        ),
        "{merge}"
    );
    let unseal = flat(&sb.seal(&["unseal", "--help"]).ok().stdout);
    assert!(
        unseal.contains("Repeatable; each value is one path, commas included"),
        "{unseal}"
    );
}
