//! The static pages the loopback listener answers with. They load nothing
//! external (no scripts, styles, images or fonts from anywhere), so the
//! listener never makes the browser reach out while a code is in the URL.

pub const SUCCESS: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorized</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Authorized</h1>
<p>oauth-authorize received the authorization. You can close this tab and return to the terminal.</p>
</body></html>
"#;

pub const PROVIDER_ERROR: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorization failed</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Authorization failed</h1>
<p>The provider did not grant access. The terminal running oauth-authorize says why. You can close this tab.</p>
</body></html>
"#;

pub const REJECTED: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not accepted</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Not accepted</h1>
<p>This request does not belong to the authorization that oauth-authorize started, so it was ignored.
oauth-authorize is still waiting for the provider's redirect.</p>
</body></html>
"#;

pub const NOT_FOUND: &str = "not found\n";
