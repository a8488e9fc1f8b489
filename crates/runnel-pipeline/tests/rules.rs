//! The expression language against GitLab's own examples: every `tests/fixtures/rules-expr/*.cases`
//! file is a table of expressions with the value GitLab gives them (its spec file is named in
//! the file's header). Each line is checked, and the whole table, with the error messages, is
//! snapshotted.

use std::fmt::Write as _;
use std::path::Path;

use runnel_pipeline::rules::{Expr, Value, VarLookup};

/// One `.cases` file.
struct Table {
    /// `# var: NAME=value` lines, in order (`\n` in a value is a newline).
    vars: Vec<(String, String)>,
    /// `# input: name=value` lines: `spec:inputs` values for `$[[ inputs.name ]]`.
    inputs: Vec<(String, String)>,
    /// `# mode: truthful`: the expected column is `Statement#truthful?`, not `#evaluate`.
    truthful: bool,
    /// `expression => expected`.
    cases: Vec<(String, String)>,
}

impl Table {
    fn read(path: &Path) -> Table {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let mut table = Table {
            vars: Vec::new(),
            inputs: Vec::new(),
            truthful: false,
            cases: Vec::new(),
        };
        for line in text.lines() {
            if let Some(var) = line.strip_prefix("# var: ") {
                let (name, value) = var.split_once('=').expect("`# var: NAME=value`");
                table
                    .vars
                    .push((name.to_owned(), value.replace("\\n", "\n")));
            } else if let Some(input) = line.strip_prefix("# input: ") {
                let (name, value) = input.split_once('=').expect("`# input: name=value`");
                table.inputs.push((name.to_owned(), value.to_owned()));
            } else if line == "# mode: truthful" {
                table.truthful = true;
            } else if !line.starts_with('#') {
                let (expr, expected) = line.rsplit_once(" => ").expect("`expression => expected`");
                table.cases.push((expr.to_owned(), expected.to_owned()));
            }
        }
        table
    }
}

impl VarLookup for Table {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.vars.lookup(name)
    }

    fn lookup_input(&self, name: &str) -> Option<&str> {
        self.inputs.lookup(name)
    }
}

/// Ruby's `inspect` of a value, as GitLab's specs write it.
fn inspect(value: &Value<'_>) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Str(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Regex(p) => p.literal().to_owned(),
    }
}

#[test]
fn expression_tables() {
    insta::glob!("fixtures/rules-expr/*.cases", |path| {
        let table = Table::read(path);
        let mut out = String::new();
        let mut failures = Vec::new();
        for (text, expected) in &table.cases {
            let actual = match Expr::parse(text) {
                Ok(expr) if table.truthful => expr.evaluate(&table).to_string(),
                Ok(expr) => inspect(&expr.value(&table)),
                Err(_) if table.truthful && expected == "false" => "false".to_owned(),
                Err(_) => "error".to_owned(),
            };
            let _ = writeln!(out, "{text} => {actual}");
            if let Err(e) = Expr::parse(text) {
                let _ = writeln!(out, "{}^ {e}", " ".repeat(text[..e.offset].chars().count()));
            }
            if &actual != expected {
                failures.push(format!("{text}: expected {expected}, got {actual}"));
            }
        }
        assert!(failures.is_empty(), "{}: {failures:#?}", path.display());
        insta::assert_snapshot!(out);
    });
}

mod rules_evaluation {
    use std::path::Path;

    use runnel_pipeline::diag::{Diagnostics, render_plain};
    use runnel_pipeline::rules::{
        RuleContext, RulesKind, evaluate_rules, evaluate_rules_with_default, rules_from_node,
        rules_from_node_in,
    };
    use runnel_pipeline::source::SourceMap;
    use runnel_pipeline::when::{AllowFailure, When};
    use runnel_pipeline::yaml::parse_document;

    /// Parses `yaml` (a `rules:` list) and converts it, returning the rules and the rendered
    /// diagnostics.
    fn load(yaml: &str, kind: RulesKind) -> (Vec<runnel_pipeline::rules::Rule>, String) {
        let mut map = SourceMap::new();
        let file = map.add(".gitlab-ci.yml", yaml);
        let node = parse_document(&map, file).expect("valid YAML");
        let rules_node = node.get("rules").expect("a `rules` key");
        let mut diags = Diagnostics::new();
        let rules = match kind {
            RulesKind::Job => rules_from_node(rules_node, &mut diags),
            _ => rules_from_node_in(rules_node, kind, "`workflow`", &mut diags),
        };
        (rules, render_plain(&diags.0, &map))
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn first_matching_rule_wins_and_no_match_is_never() {
        // GitLab: spec/lib/gitlab/ci/build/rules_spec.rb.
        let (rules, errors) = load(
            "rules:\n  - if: $CI_COMMIT_BRANCH == \"main\"\n    when: manual\n    allow_failure: true\n  - if: $CI_COMMIT_BRANCH\n    variables: {DEPLOY: \"no\"}\n",
            RulesKind::Job,
        );
        assert_eq!(errors, "");
        let main = vars(&[("CI_COMMIT_BRANCH", "main")]);
        let outcome = evaluate_rules(&rules, &RuleContext::new(&main));
        assert_eq!(
            (outcome.when, outcome.matched_rule),
            (When::Manual, Some(0))
        );
        assert_eq!(outcome.allow_failure, Some(AllowFailure::Bool(true)));
        let feature = vars(&[("CI_COMMIT_BRANCH", "feature")]);
        let outcome = evaluate_rules(&rules, &RuleContext::new(&feature));
        assert_eq!(
            (outcome.when.clone(), outcome.matched_rule),
            (When::OnSuccess, Some(1))
        );
        assert_eq!(outcome.variables, vars(&[("DEPLOY", "no")]));
        let tag = vars(&[("CI_COMMIT_TAG", "v1")]);
        let outcome = evaluate_rules(&rules, &RuleContext::new(&tag));
        assert_eq!((outcome.when, outcome.matched_rule), (When::Never, None));
        let default =
            evaluate_rules_with_default(&rules, &RuleContext::new(&feature), &When::Always);
        assert_eq!(default.when, When::Always);
    }

    #[test]
    fn delayed_rule_carries_start_in() {
        let (rules, errors) = load(
            "rules:\n  - when: delayed\n    start_in: 30 minutes\n",
            RulesKind::Job,
        );
        assert_eq!(errors, "");
        let outcome = evaluate_rules(&rules, &RuleContext::new(&vars(&[])));
        assert!(
            matches!(outcome.when, When::Delayed { ref start_in, duration } if start_in == "30 minutes" && duration.as_secs() == 1800)
        );
    }

    #[test]
    fn changes_with_unknown_changed_files_is_true() {
        // GitLab: clause/changes.rb — `return true unless modified_paths`.
        let (rules, _) = load("rules:\n  - changes: [docs/**/*]\n", RulesKind::Job);
        let v = vars(&[]);
        assert_eq!(
            evaluate_rules(&rules, &RuleContext::new(&v)).matched_rule,
            Some(0)
        );
        let none: Vec<String> = Vec::new();
        assert_eq!(
            evaluate_rules(
                &rules,
                &RuleContext::new(&v).with_changed_files(Some(&none))
            )
            .matched_rule,
            None
        );
        let docs = vec!["docs/a/b.md".to_owned()];
        assert_eq!(
            evaluate_rules(
                &rules,
                &RuleContext::new(&v).with_changed_files(Some(&docs))
            )
            .matched_rule,
            Some(0)
        );
        let src = vec!["src/main.rs".to_owned()];
        assert_eq!(
            evaluate_rules(&rules, &RuleContext::new(&v).with_changed_files(Some(&src)))
                .matched_rule,
            None
        );
    }

    #[test]
    fn changes_paths_expand_variables_and_keep_unknown_ones() {
        let (rules, _) = load(
            "rules:\n  - changes:\n      paths: [$DIR/*.py, $UNKNOWN/x]\n",
            RulesKind::Job,
        );
        let v = vars(&[("DIR", "app")]);
        let changed = vec!["app/main.py".to_owned()];
        let ctx = RuleContext::new(&v).with_changed_files(Some(&changed));
        assert_eq!(evaluate_rules(&rules, &ctx).matched_rule, Some(0));
        let literal = vec!["$UNKNOWN/x".to_owned()];
        let ctx = RuleContext::new(&v).with_changed_files(Some(&literal));
        assert_eq!(evaluate_rules(&rules, &ctx).matched_rule, Some(0));
    }

    #[test]
    fn changes_compare_to_asks_the_caller_and_reports_bad_refs() {
        let (rules, _) = load(
            "rules:\n  - changes:\n      paths: [a.txt]\n      compare_to: refs/heads/$BASE\n",
            RulesKind::Job,
        );
        let v = vars(&[("BASE", "main")]);
        let diff = |reference: &str| {
            if reference == "refs/heads/main" {
                Ok(vec!["a.txt".to_owned()])
            } else {
                Err(format!("no {reference}"))
            }
        };
        let ctx = RuleContext::new(&v).with_compare_to(&diff);
        assert_eq!(evaluate_rules(&rules, &ctx).matched_rule, Some(0));
        let other = vars(&[("BASE", "nope")]);
        let outcome = evaluate_rules(&rules, &RuleContext::new(&other).with_compare_to(&diff));
        assert_eq!(outcome.when, When::Never);
        assert_eq!(
            outcome.errors,
            ["rules:changes:compare_to is not a valid ref"]
        );
    }

    #[test]
    fn exists_looks_at_project_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for file in [
            "Dockerfile",
            "src/lib/a.rs",
            ".hidden/conf.yml",
            ".git/HEAD",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(root)).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
        }
        std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
        let check = |glob: &str, v: &[(&str, &str)]| {
            let (rules, errors) =
                load(&format!("rules:\n  - exists: ['{glob}']\n"), RulesKind::Job);
            assert_eq!(errors, "");
            let v = vars(v);
            let ctx = RuleContext::new(&v).with_project_dir(Some(Path::new(root)));
            evaluate_rules(&rules, &ctx).matched_rule.is_some()
        };
        assert!(check("Dockerfile", &[]));
        assert!(!check("dockerfile", &[]));
        assert!(check("**/*.rs", &[]));
        assert!(check("src/**/a.rs", &[]));
        assert!(check("$D/lib/a.rs", &[("D", "src")]));
        assert!(check("*/conf.yml", &[]));
        assert!(!check(".git/HEAD", &[]));
        assert!(!check("emptydir", &[]));
        assert!(!check("src/*.rs", &[]));
    }

    #[test]
    fn exists_agrees_with_the_rules_exists_conformance_case() {
        // shared/conformance/cases/rules-exists: `*` matches the dot file `.gitkeep`
        // (FNM_DOTMATCH), variables expand in paths, and an empty path matches nothing.
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        for file in [
            "exists.file",
            "existsDir/.gitkeep",
            "existsDir/existDirNested/.gitkeep",
            "existsDir/existDirNested/recursive.file",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap_or(root)).expect("mkdir");
            std::fs::write(&path, "").expect("write");
        }
        let v = vars(&[("DIR", "existsDir/existDirNested")]);
        let cases = [
            ("exists: [exists.file]", true),
            ("exists: {paths: [exists.file]}", true),
            ("exists: ['existsDir/*']", true),
            ("exists: ['existsDir/**/*']", true),
            ("exists: [not-exists.file]", false),
            ("exists: ['notExistsDir/*']", false),
            ("exists: ['notExistsDir/**/*']", false),
            ("exists: ['${DIR}/recursive.file']", true),
            ("exists: ['']", false),
        ];
        for (rule, expected) in cases {
            let (rules, errors) = load(&format!("rules:\n  - {rule}\n"), RulesKind::Job);
            assert_eq!(errors, "", "{rule}");
            let ctx = RuleContext::new(&v).with_project_dir(Some(Path::new(root)));
            assert_eq!(
                evaluate_rules(&rules, &ctx).matched_rule.is_some(),
                expected,
                "{rule}"
            );
        }
    }

    #[test]
    fn invalid_rules_are_reported_with_spans() {
        let yaml = r#"rules:
  - if: '$CI_COMMIT_BRANCH = "main"'
  - if: $A == "a" && (
  - iff: $A
    when: sometimes
  - when: delayed
  - start_in: 1 hour
  - when: delayed
    start_in: 2 weeks
  - changes: {path: [a]}
  - exists: [1]
    allow_failure: maybe
  - variables: {A: [1]}
  - just a string
"#;
        let (rules, errors) = load(yaml, RulesKind::Job);
        assert!(rules.is_empty(), "{rules:?}");
        insta::assert_snapshot!(errors);
    }

    #[test]
    fn workflow_rules_allow_only_always_and_never() {
        let (rules, errors) = load(
            "rules:\n  - if: $X\n    when: manual\n  - when: always\n    auto_cancel: {on_new_commit: none}\n",
            RulesKind::Workflow,
        );
        assert_eq!(rules.len(), 1);
        insta::assert_snapshot!(errors);
    }
}

mod only_except {
    use runnel_pipeline::diag::{Diagnostics, render_plain};
    use runnel_pipeline::rules::{
        OnlyExcept, RefContext, evaluate_only_except, only_except_from_node,
    };
    use runnel_pipeline::source::SourceMap;
    use runnel_pipeline::yaml::parse_document;

    fn policy(yaml: &str) -> (Option<OnlyExcept>, Option<OnlyExcept>, String) {
        let mut map = SourceMap::new();
        let file = map.add(".gitlab-ci.yml", yaml);
        let node = parse_document(&map, file).expect("valid YAML");
        let mut diags = Diagnostics::new();
        let only = node
            .get("only")
            .and_then(|n| only_except_from_node(n, "only", "job `test`", &mut diags));
        let except = node
            .get("except")
            .and_then(|n| only_except_from_node(n, "except", "job `test`", &mut diags));
        (only, except, render_plain(&diags.0, &map))
    }

    struct Pipeline {
        ref_name: &'static str,
        tag: bool,
        source: &'static str,
        vars: Vec<(String, String)>,
        changed: Option<Vec<String>>,
        workflow_rules: bool,
    }

    fn push(ref_name: &'static str) -> Pipeline {
        Pipeline {
            ref_name,
            tag: false,
            source: "push",
            vars: Vec::new(),
            changed: None,
            workflow_rules: false,
        }
    }

    fn runs(yaml: &str, p: &Pipeline) -> bool {
        let (only, except, errors) = policy(yaml);
        assert!(!errors.contains("error"), "{yaml}: {errors}");
        let ctx = RefContext {
            ref_name: p.ref_name,
            tag: p.tag,
            source: p.source,
            project_path: Some("group/project"),
            variables: &p.vars,
            changed_files: p.changed.as_deref(),
            kubernetes_active: false,
            has_workflow_rules: p.workflow_rules,
        };
        evaluate_only_except(only.as_ref(), except.as_ref(), &ctx)
    }

    #[test]
    fn default_only_is_branches_and_tags() {
        // GitLab: entry/policy.rb `default` and seed/build.rb.
        assert!(runs("{}", &push("main")));
        let mr = Pipeline {
            source: "merge_request_event",
            ..push("feature")
        };
        assert!(!runs("{}", &mr));
        assert!(runs(
            "{}",
            &Pipeline {
                workflow_rules: true,
                ..mr
            }
        ));
        assert!(runs(
            "{}",
            &Pipeline {
                tag: true,
                ..push("v1.0")
            }
        ));
    }

    #[test]
    fn refs_keywords_names_and_regexps() {
        // GitLab: spec/lib/gitlab/ci/build/policy/refs_spec.rb.
        assert!(runs("only: [main]", &push("main")));
        assert!(!runs("only: [main]", &push("feature")));
        assert!(runs("only: ['/^feature-.*$/']", &push("feature-1")));
        assert!(runs("only: ['/^FEATURE/i']", &push("feature-1")));
        assert!(!runs("only: ['/^feature-.*$/']", &push("xfeature-1")));
        assert!(runs(
            "only: [tags]",
            &Pipeline {
                tag: true,
                ..push("v1")
            }
        ));
        assert!(!runs("only: [tags]", &push("v1")));
        assert!(runs(
            "only: [schedules]",
            &Pipeline {
                source: "schedule",
                ..push("main")
            }
        ));
        assert!(runs("only: [pushes]", &push("main")));
        assert!(runs(
            "only: [web]",
            &Pipeline {
                source: "web",
                ..push("main")
            }
        ));
        assert!(runs(
            "only: [api]",
            &Pipeline {
                source: "api",
                ..push("main")
            }
        ));
        assert!(runs(
            "only: [triggers]",
            &Pipeline {
                source: "trigger",
                ..push("main")
            }
        ));
        assert!(runs(
            "only: [merge_requests]",
            &Pipeline {
                source: "merge_request_event",
                ..push("f")
            }
        ));
        assert!(runs(
            "only: [external_pull_requests]",
            &Pipeline {
                source: "external_pull_request_event",
                ..push("f")
            }
        ));
        assert!(runs(
            "only: [pipelines]",
            &Pipeline {
                source: "pipeline",
                ..push("main")
            }
        ));
        assert!(runs(
            "only: [chats]",
            &Pipeline {
                source: "chat",
                ..push("main")
            }
        ));
        assert!(runs("only: [main@group/project]", &push("main")));
        assert!(!runs("only: [main@other/project]", &push("main")));
        // Ref names are not matched for merge request pipelines.
        assert!(!runs(
            "only: [feature]",
            &Pipeline {
                source: "merge_request_event",
                ..push("feature")
            }
        ));
    }

    #[test]
    fn except_removes_on_any_key_and_only_needs_all_keys() {
        assert!(!runs("except: [main]", &push("main")));
        assert!(runs("except: [main]", &push("feature")));
        let with_var = Pipeline {
            vars: vec![("DEPLOY".to_owned(), "1".to_owned())],
            ..push("main")
        };
        assert!(runs(
            "only: {refs: [main], variables: [$DEPLOY]}",
            &with_var
        ));
        assert!(!runs(
            "only: {refs: [main], variables: [$DEPLOY]}",
            &push("main")
        ));
        assert!(!runs(
            "only: {refs: [other], variables: [$DEPLOY]}",
            &with_var
        ));
        assert!(!runs(
            "except: {refs: [other], variables: [$DEPLOY]}",
            &with_var
        ));
        // `only` without `refs` still gets `branches, tags` merged in.
        let mr = Pipeline {
            source: "merge_request_event",
            ..with_var
        };
        assert!(!runs("only: {variables: [$DEPLOY]}", &mr));
    }

    #[test]
    fn changes_and_kubernetes() {
        let changed = Pipeline {
            changed: Some(vec!["docs/index.md".to_owned()]),
            ..push("main")
        };
        assert!(runs("only: {changes: ['docs/**/*']}", &changed));
        assert!(!runs("only: {changes: ['src/**/*']}", &changed));
        assert!(runs("only: {changes: ['src/**/*']}", &push("main")));
        assert!(!runs("only: {kubernetes: active}", &push("main")));
        let (_, _, warnings) = policy("only: {kubernetes: active}");
        assert!(
            warnings.starts_with("warning: `only:kubernetes` in job `test`: runnel cannot know"),
            "{warnings}"
        );
    }

    #[test]
    fn invalid_policies_are_reported() {
        let (_, _, errors) = policy(
            "only: main\nexcept: {variables: ['$A = 1'], refs: ['/(/'], kubernetes: yes, ref: [x]}\n",
        );
        insta::assert_snapshot!(errors);
    }
}

mod properties {
    use proptest::prelude::*;
    use runnel_pipeline::rules::Expr;

    fn atom() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-C]".prop_map(|v| format!("${v}")),
            "[a-c ]{0,3}".prop_map(|s| format!("\"{s}\"")),
            Just("null".to_owned()),
            Just("/^a.*/".to_owned()),
            Just("/B$/i".to_owned()),
        ]
    }

    fn expression() -> impl Strategy<Value = String> {
        let comparison = (
            atom(),
            prop_oneof![Just("=="), Just("!="), Just("=~"), Just("!~")],
            atom(),
        )
            .prop_map(|(l, op, r)| format!("{l} {op} {r}"));
        let leaf = prop_oneof![atom(), comparison];
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("{l} && {r}")),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| format!("{l} || {r}")),
                inner.prop_map(|e| format!("({e})")),
            ]
        })
    }

    fn vars() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[A-C]", "[aAbB ]{0,3}"), 0..4)
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,60}") {
            let _ = Expr::parse(&text).map(|e| e.evaluate(&Vec::<(String, String)>::new()));
        }

        #[test]
        fn error_offsets_are_char_boundaries_within_the_text(text in "\\PC{0,40}") {
            if let Err(e) = Expr::parse(&text) {
                prop_assert!(e.offset <= text.len() && text.is_char_boundary(e.offset));
            }
        }

        #[test]
        fn regexp_translation_never_panics(body in "\\PC{0,30}", flags in "[imsU]{0,2}") {
            let _ = runnel_pipeline::rules::Pattern::new(&format!("/{body}/{flags}"));
        }

        #[test]
        fn regexp_translation_never_panics_on_regexp_soup(body in r"[\\(){}\[\]^$.*+?|:<>=!PQEx0-9a-z-]{0,24}") {
            let _ = runnel_pipeline::rules::Pattern::new(&format!("/{body}/"));
        }

        #[test]
        fn parser_never_panics_on_expression_soup(text in r#"[$A-Z()=~!&|"'/ nul]{0,40}"#) {
            let _ = Expr::parse(&text);
        }

        #[test]
        fn canonical_form_reparses_to_the_same_tree(text in expression()) {
            let expr = Expr::parse(&text);
            prop_assume!(expr.is_ok(), "generated expressions may exceed the token limit");
            let expr = expr.expect("checked");
            let again = Expr::parse(&expr.to_canonical());
            prop_assume!(again.is_ok(), "parentheses may push past the token limit");
            prop_assert_eq!(again.expect("checked"), expr);
        }

        #[test]
        fn and_is_commutative_for_comparisons(a in "[A-C]", b in "[A-C]", vars in vars()) {
            let ab = Expr::parse(&format!("${a} == \"a\" && ${b} != null")).expect("valid");
            let ba = Expr::parse(&format!("${b} != null && ${a} == \"a\"")).expect("valid");
            prop_assert_eq!(ab.evaluate(&vars), ba.evaluate(&vars));
        }

        // Ruby's `&&`/`||` treat "" as true but `present?` does not, so `$EMPTY && $SET` is
        // true while `$SET && $EMPTY` is false (statement_spec.rb). Without empty values the
        // operators commute.
        #[test]
        fn and_or_commute_for_variables_without_empty_values(
            a in "[A-C]",
            b in "[A-C]",
            vars in proptest::collection::vec(("[A-C]", "[aAbB]{1,3}"), 0..4),
        ) {
            let ab = Expr::parse(&format!("${a} && ${b}")).expect("valid");
            let ba = Expr::parse(&format!("${b} && ${a}")).expect("valid");
            prop_assert_eq!(ab.evaluate(&vars), ba.evaluate(&vars));
            let ab = Expr::parse(&format!("${a} == \"a\" || ${b}")).expect("valid");
            let ba = Expr::parse(&format!("${b} || ${a} == \"a\"")).expect("valid");
            prop_assert_eq!(ab.evaluate(&vars), ba.evaluate(&vars));
        }

        #[test]
        fn not_equals_is_the_negation_of_equals(e in atom(), f in atom(), vars in vars()) {
            let eq = Expr::parse(&format!("{e} == {f}")).expect("valid");
            let ne = Expr::parse(&format!("{e} != {f}")).expect("valid");
            prop_assert_eq!(eq.evaluate(&vars), !ne.evaluate(&vars));
        }
    }
}
