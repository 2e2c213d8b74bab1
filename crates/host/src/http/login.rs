//! The pages of signing in: the login page (`GET /login`, and the answer to
//! a failed `POST /login`), the 401 page that sends a browser there, and
//! what the status page shows of the session (`mark_page`): the user, the
//! role as `data-role` on `<body>` (page.css hides elements marked
//! `data-needs="operator"` or `data-needs="admin"` from lower roles), a
//! sign-out button, or the "no users: this machine only" note.

use super::Reply;
use super::access::Grant;
use crate::page::escape;

fn html(status: u16, body: String) -> Reply {
    Reply {
        status,
        content_type: "text/html; charset=utf-8",
        cache: "no-store",
        body: body.into_bytes(),
    }
}

/// The login page, with an optional message (a failed or throttled try)
/// and the user name tried (kept in its field; the password never is).
pub fn page(status: u16, users_configured: bool, message: Option<&str>, user: &str) -> Reply {
    let (user_focus, password_focus) = if user.is_empty() {
        (" autofocus", "")
    } else {
        ("", " autofocus")
    };
    let user = escape(user);
    let message = message.map_or_else(String::new, |m| {
        format!(
            r#"<p class="login-error" role="alert">{}</p>
"#,
            escape(m)
        )
    });
    let note = if users_configured {
        String::new()
    } else {
        r#"<p class="hint">No users are configured: this machine needs no sign-in. <a href="/">Open the status page</a>.</p>
"#
        .to_string()
    };
    html(
        status,
        format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Sign in · wsio</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/page.css">
</head>
<body class="login-body">
<main class="login">
<h1>Sign in</h1>
<p class="subtitle">wsio reference controller</p>
{note}{message}<form method="post" action="/login">
<div class="field"><label for="user">User</label><input id="user" name="user" value="{user}" autocomplete="username" autocapitalize="none" spellcheck="false" required{user_focus}></div>
<div class="field"><label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required{password_focus}></div>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"#
        ),
    )
}

/// 401 for the status page: a browser goes on to the login page (a meta
/// refresh: the page's policy allows no inline script).
pub fn to_login_page() -> Reply {
    html(
        401,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0; url=/login">
<title>Sign in · wsio</title>
</head>
<body><p>Sign in first: <a href="/login">/login</a>.</p></body>
</html>
"#
        .to_string(),
    )
}

/// The status page for this grant: `data-role` on `<body>`, and in the
/// header either the user with a sign-out button or the no-users note.
pub fn mark_page(page: Vec<u8>, grant: &Grant) -> Vec<u8> {
    let Ok(page) = String::from_utf8(page) else {
        return Vec::new();
    };
    let body = format!(r#"<body data-role="{}">"#, grant.role.name());
    let session = match (&grant.user, grant.users_configured) {
        (Some(user), _) => format!(
            r#"<form class="session" method="post" action="/logout"><span class="session-user">{} · {}</span> <button type="submit" class="secondary">Sign out</button></form>
</header>"#,
            escape(user),
            grant.role.name()
        ),
        (None, false) => r#"<p class="session session-note" title="Add a user (wsio user add NAME --role admin) to serve other machines">no users: this machine only</p>
</header>"#
            .to_string(),
        (None, true) => "</header>".to_string(),
    };
    page.replacen("<body>", &body, 1)
        .replacen("</header>", &session, 1)
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Role;

    fn text(reply: Reply) -> String {
        String::from_utf8(reply.body).unwrap()
    }

    #[test]
    fn the_name_tried_comes_back_escaped_and_the_password_field_empty() {
        let html = text(page(401, true, Some("Wrong"), "<b>\"x"));
        assert!(html.contains(r#"value="&lt;b&gt;&quot;x""#), "{html}");
        assert!(!html.contains("<b>"));
        assert!(html.contains(r#"autocomplete="current-password" required autofocus>"#));
    }

    #[test]
    fn the_page_gets_the_role_and_the_user_or_the_no_users_note() {
        let page = b"<body>\n<header class=\"top\">h</header>".to_vec();
        let user = Grant {
            user: Some("<vera>".into()),
            role: Role::Viewer,
            users_configured: true,
        };
        let html = String::from_utf8(mark_page(page.clone(), &user)).unwrap();
        assert!(html.contains(r#"<body data-role="viewer">"#), "{html}");
        assert!(html.contains("&lt;vera&gt; · viewer"), "{html}");
        let local = Grant {
            user: None,
            role: Role::Admin,
            users_configured: false,
        };
        let html = String::from_utf8(mark_page(page, &local)).unwrap();
        assert!(html.contains(r#"<body data-role="admin">"#));
        assert!(html.contains("no users: this machine only"));
    }
}
