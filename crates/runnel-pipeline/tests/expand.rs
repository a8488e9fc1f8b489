//! Variable expansion: GitLab's server-side `ExpandVariables` and the runner's `os.Expand`.

use proptest::prelude::*;
use runnel_pipeline::expand::{
    ExpandVariable, SortExpandOptions, expand_runner, expand_runner_variables, expand_server,
    expand_server_existing, sort_and_expand_all,
};

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

/// GitLab expands variables that refer to each other before sending the job
/// ([`sort_and_expand_all`] with the runner's options), then the runner expands once more.
fn as_job_sees_them(vars: &[ExpandVariable]) -> Vec<(String, String)> {
    let sent = sort_and_expand_all(vars, SortExpandOptions::RUNNER);
    assert_eq!(sent.error, None);
    expand_runner_variables(&sent.variables)
        .into_iter()
        .map(|v| (v.key, v.value))
        .collect()
}

#[test]
fn dollar_dollar_survives_the_server_and_becomes_one_dollar_on_the_runner() {
    // shared/conformance/cases/variables-escaping-dollar.
    let vars = [
        ExpandVariable::new("FLAGS", "-al"),
        ExpandVariable::new("LS_CMD", r#"ls "$FLAGS" $$TMP_DIR"#),
    ];
    let seen = as_job_sees_them(&vars);
    assert!(
        seen.contains(&("LS_CMD".to_owned(), r#"ls "-al" $TMP_DIR"#.to_owned())),
        "{seen:?}"
    );
}

#[test]
fn expand_false_variables_stay_literal_and_others_expand() {
    // shared/conformance/cases/variables-expand-false.
    let mut raw = ExpandVariable::new("VAR_2", "2 $VAR_1");
    raw.raw = true;
    let vars = [
        ExpandVariable::new("VAR_1", "1"),
        raw,
        ExpandVariable::new("VAR_3", "3 $VAR_1"),
    ];
    let seen = as_job_sees_them(&vars);
    assert!(
        seen.contains(&("VAR_2".to_owned(), "2 $VAR_1".to_owned())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("VAR_3".to_owned(), "3 1".to_owned())),
        "{seen:?}"
    );
}

#[test]
fn a_variable_referring_to_a_raw_one_gets_the_raw_value_unexpanded() {
    // GitLab: collection.rb `expand_value` (issue 353991): `C: $B` with raw `B: raw-$A`
    // reaches the job as `raw-$A`.
    let mut raw = ExpandVariable::new("B", "raw-$A");
    raw.raw = true;
    let vars = [
        ExpandVariable::new("A", "normal"),
        raw,
        ExpandVariable::new("C", "$B"),
    ];
    let seen = as_job_sees_them(&vars);
    assert!(
        seen.contains(&("C".to_owned(), "raw-$A".to_owned())),
        "{seen:?}"
    );
}

#[test]
fn nested_references_resolve_through_server_then_runner() {
    // shared/conformance/cases-extra/variables-nested-name-expansion: GitLab turns
    // `${URL_${ENV}}` into `${URL_DEV}`, and the runner's pass turns that into its value.
    let vars = [
        ExpandVariable::new("DEV_URL", "dev-url"),
        ExpandVariable::new("URL_DEV", "url-dev"),
        ExpandVariable::new("URL", "${URL_${ENV}}"),
        ExpandVariable::new("OTHER", "${${ENV}_URL}"),
        ExpandVariable::new("ENV", "DEV"),
    ];
    let seen = as_job_sees_them(&vars);
    assert!(
        seen.contains(&("URL".to_owned(), "url-dev".to_owned())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("OTHER".to_owned(), "dev-url".to_owned())),
        "{seen:?}"
    );
}
