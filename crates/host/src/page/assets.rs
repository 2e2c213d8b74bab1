//! The page's static files (`GET /assets/<name>`), embedded at build time:
//! the status page's script and style, the icon, and the Configure view's
//! ES modules and style (`configure.js` imports the other three).

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// A static file of the page: content type and body.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "page.css" => Some((CSS, include_str!("../assets/page.css"))),
        "page.js" => Some((JS, include_str!("../assets/page.js"))),
        "icon.svg" => Some(("image/svg+xml", include_str!("../assets/icon.svg"))),
        "configure.css" => Some((CSS, include_str!("../assets/configure.css"))),
        "configure.js" => Some((JS, include_str!("../assets/configure.js"))),
        "configure-fields.js" => Some((JS, include_str!("../assets/configure-fields.js"))),
        "configure-wires.js" => Some((JS, include_str!("../assets/configure-wires.js"))),
        "configure-apply.js" => Some((JS, include_str!("../assets/configure-apply.js"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_are_embedded() {
        assert!(asset("page.css").unwrap().0.starts_with("text/css"));
        assert!(asset("page.js").unwrap().1.contains("EventSource"));
        assert!(asset("configure.css").unwrap().0.starts_with("text/css"));
        assert!(asset("../Cargo.toml").is_none());
        // configure.js imports the others by these names.
        let entry = asset("configure.js").unwrap().1;
        for name in [
            "configure-fields.js",
            "configure-wires.js",
            "configure-apply.js",
        ] {
            assert!(entry.contains(&format!("'./{name}'")), "{name}");
            assert!(asset(name).unwrap().0.starts_with("text/javascript"));
        }
    }
}
