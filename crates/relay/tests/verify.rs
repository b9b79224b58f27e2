//! `relay verify` end to end: the binary against the embedded sandbox, and against a sandbox
//! configured through the environment with a wrong secret.

use std::process::{Command, Output};

fn relay(envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    // Only what the test sets: a developer's or CI's own NORCE_* must not leak in.
    command.env_clear().arg("verify");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("relay runs")
}

#[test]
fn with_nothing_configured_it_verifies_the_embedded_sandbox() {
    let output = relay(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("embedded sandbox"), "{stderr}");
    for platform in ["Norce", "nShift", "Brightpearl"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(platform))
            .unwrap_or_else(|| panic!("no {platform} row:\n{stdout}"));
        assert!(row.contains(" yes ") && row.contains("ok: "), "{row}");
        assert!(row.contains(" ms "), "latency shown: {row}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_fails_with_advice_naming_the_setting_and_exit_code_1() {
    let sandbox = sandbox::Sandbox::start(sandbox::SandboxConfig::default())
        .await
        .unwrap();
    let creds = sandbox.credentials();
    let envs = vec![
        ("NORCE_BASE_URL", creds.norce.base_url.clone()),
        ("NORCE_CLIENT_ID", creds.norce.client_id.clone()),
        ("NORCE_CLIENT_SECRET", "not-the-secret".to_owned()),
        (
            "NORCE_APPLICATION_ID",
            creds.norce.application_id.to_string(),
        ),
        ("NORCE_SCOPE", creds.norce.scope.clone()),
        ("NSHIFT_BASE_URL", creds.nshift.base_url.clone()),
        ("NSHIFT_API_KEY_ID", creds.nshift.api_key_id.clone()),
        ("NSHIFT_SECRET_ID", creds.nshift.secret_id.clone()),
    ];
    let output = tokio::task::spawn_blocking(move || relay(&envs))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let norce = stdout.lines().find(|l| l.starts_with("Norce")).unwrap();
    assert!(
        norce.contains("FAILED") && norce.contains("NORCE_CLIENT_SECRET"),
        "{norce}"
    );
    assert!(
        !stdout.contains("not-the-secret"),
        "the secret is never printed"
    );
    let nshift = stdout.lines().find(|l| l.starts_with("nShift")).unwrap();
    assert!(
        nshift.contains("ok: "),
        "a configured, working platform still passes: {nshift}"
    );
    assert!(
        !stdout.contains("Brightpearl"),
        "only configured platforms are checked:\n{stdout}"
    );
}

#[test]
fn a_missing_setting_is_named() {
    let output = relay(&[("BRIGHTPEARL_ACCOUNT", "acme".to_owned())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout.contains("BRIGHTPEARL_APP_REF"), "{stdout}");
}
