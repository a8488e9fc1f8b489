//! Variable expansion: GitLab's server-side `ExpandVariables` and the runner's `os.Expand`.

use proptest::prelude::*;
use runnel_pipeline::expand::{expand_runner, expand_server, expand_server_existing};

fn vars() -> Vec<(String, String)> {
    [
        ("variable", "value"),
        ("variable2", "value2"),
        ("empty", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn server_expansion_matches_gitlab_spec_examples() {
    // GitLab: spec/lib/expand_variables_spec.rb.
    let v = vars();
    let cases = [
        ("key", "key"),
        ("key$variable", "keyvalue"),
        ("key${variable}", "keyvalue"),
        ("key%variable%", "keyvalue"),
        ("key$variable$variable2", "keyvaluevalue2"),
        ("key${variable}${variable2}", "keyvaluevalue2"),
        ("key%variable%%variable2%", "keyvaluevalue2"),
        ("key$variable2", "keyvalue2"),
        ("key$missing", "key"),
    ];
    for (text, expected) in cases {
        assert_eq!(expand_server(text, &v), expected, "{text}");
    }
    assert_eq!(expand_server_existing("key$missing", &v), "key$missing");
    assert_eq!(
        expand_server_existing("key%variable%%variable2%", &v),
        "keyvaluevalue2"
    );
    assert_eq!(
        expand_server_existing("key%variable%%missing%", &v),
        "keyvalue%missing%"
    );
}

#[test]
fn runner_expansion_leaves_windows_style_references() {
    assert_eq!(expand_runner("key%variable%", &vars()), "key%variable%");
    assert_eq!(expand_runner("$$variable", &vars()), "$variable");
}

proptest! {
    #[test]
    fn expansion_never_panics(text in "\\PC*") {
        let v = vars();
        let _ = expand_runner(&text, &v);
        let _ = expand_server(&text, &v);
        let _ = expand_server_existing(&text, &v);
    }

    #[test]
    fn expansion_never_panics_on_dollar_soup(text in "[$%{}a-z_0-9é-]{0,30}") {
        let v = vars();
        let _ = expand_runner(&text, &v);
        let _ = expand_server(&text, &v);
    }

    #[test]
    fn runner_text_without_dollar_is_unchanged(text in "[^$]*") {
        prop_assert_eq!(expand_runner(&text, &vars()), text);
    }

    #[test]
    fn server_text_without_references_is_unchanged(text in "[^$%]*") {
        prop_assert_eq!(expand_server(&text, &vars()), text.clone());
        prop_assert_eq!(expand_server_existing(&text, &vars()), text);
    }

    #[test]
    fn expand_existing_without_known_names_is_identity(text in "[$%{}A-Z_ ]{0,40}") {
        // Upper-case names are never defined in `vars()`.
        prop_assert_eq!(expand_server_existing(&text, &vars()), text);
    }
}
