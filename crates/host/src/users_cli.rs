//! `wsio user …` and `wsio token …`: change the users file (`users`) that
//! the running host reads at once. Passwords come from a terminal prompt
//! (never echoed) or the first line of standard input; a token is printed
//! once and only its hash is kept.

use std::io::BufRead;
use std::path::Path;

use wsio_host::users::{self, Token, User, Users};

use super::{TokenCommand, UserCommand};

/// Shorter passwords are refused: a controller's UI may face a building's
/// network.
const MIN_PASSWORD: usize = 8;

pub fn user(command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            file,
        } => {
            users::check_name(&name)?;
            let path = file.path();
            let mut all = Users::load(&path)?;
            let password = if password_stdin {
                read_stdin_password()?
            } else {
                prompt_password(&name)?
            };
            if password.chars().count() < MIN_PASSWORD {
                return Err(format!(
                    "the password is too short: use at least {MIN_PASSWORD} characters"
                ));
            }
            let changed = all.users.contains_key(&name);
            all.users.insert(
                name.clone(),
                User {
                    role,
                    password: users::hash_password(&password)?,
                },
            );
            all.save(&path)?;
            println!(
                "{} user {name} ({role}) in {}",
                if changed { "changed" } else { "added" },
                path.display()
            );
            Ok(())
        }
        UserCommand::Remove { name, file } => {
            let path = file.path();
            let mut all = Users::load(&path)?;
            if all.users.remove(&name).is_none() {
                return Err(format!(
                    "no user {name:?} in {}; users: {}",
                    path.display(),
                    names(all.users.keys())
                ));
            }
            all.save(&path)?;
            println!("removed user {name} from {}", path.display());
            Ok(())
        }
        UserCommand::List { file } => {
            let path = file.path();
            let all = Users::load(&path)?;
            list(&path, &all);
            Ok(())
        }
    }
}

pub fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Add { name, role, file } => {
            users::check_name(&name)?;
            let path = file.path();
            let mut all = Users::load(&path)?;
            if all.tokens.contains_key(&name) {
                return Err(format!(
                    "a token named {name:?} exists in {}; remove it first (wsio token remove {name})",
                    path.display()
                ));
            }
            let token = users::new_token()?;
            all.tokens.insert(
                name.clone(),
                Token {
                    role,
                    sha256: users::token_hash(&token),
                },
            );
            all.save(&path)?;
            eprintln!(
                "added token {name} ({role}) to {}; it is shown once, keep it now:",
                path.display()
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::Remove { name, file } => {
            let path = file.path();
            let mut all = Users::load(&path)?;
            if all.tokens.remove(&name).is_none() {
                return Err(format!(
                    "no token {name:?} in {}; tokens: {}",
                    path.display(),
                    names(all.tokens.keys())
                ));
            }
            all.save(&path)?;
            println!("removed token {name} from {}", path.display());
            Ok(())
        }
    }
}

fn list(path: &Path, all: &Users) {
    if !all.any() {
        println!(
            "no users or tokens in {} (the host serves this machine only)",
            path.display()
        );
        return;
    }
    for (name, user) in &all.users {
        println!("user  {name}  {}", user.role);
    }
    for (name, token) in &all.tokens {
        println!("token {name}  {}", token.role);
    }
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn prompt_password(name: &str) -> Result<String, String> {
    let first = rpassword::prompt_password(format!("password for {name}: ")).map_err(|e| {
        format!("cannot read a password from the terminal ({e}); use --password-stdin")
    })?;
    let again = rpassword::prompt_password("again: ")
        .map_err(|e| format!("cannot read a password from the terminal: {e}"))?;
    if first != again {
        return Err("the two passwords differ; nothing changed".into());
    }
    Ok(first)
}

fn read_stdin_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
