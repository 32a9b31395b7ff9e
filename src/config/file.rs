//! The config file (`--config FILE`, TOML) as the command line's defaults.
//!
//! Every flag has a key of the same name (`_` for `-`), and clap stays the one place that
//! defines each option: its type, range, environment variable and built-in default. A file
//! value replaces the built-in default of the flag of that name, so a flag beats its
//! environment variable, which beats the file, which beats the built-in default, and the value
//! is checked by the flag's own parser. Top-level keys apply to every command with that flag;
//! a table named after a command (`[worker]`, `[serve]`, `[model]`) applies to it (and its
//! subcommands) only, over the top level: `group` is a different consumer group for each
//! command. `[kafka_properties]` (extra librdkafka properties) is the one key that is not a
//! flag.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::builder::OsStr;
use clap::{Arg, ArgAction, Command};
use toml::{Table, Value};

/// The table of extra librdkafka properties, the file's one key that is not a flag.
pub const KAFKA_PROPERTIES: &str = "kafka_properties";

#[derive(Debug, Default)]
pub struct ConfigFile {
    pub path: Option<PathBuf>,
    table: Table,
}

impl ConfigFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file `{}`", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let table = text.parse::<Table>().with_context(|| format!("invalid config file `{}`", path.display()))?;
        Ok(Self { path: Some(path.to_path_buf()), table })
    }

    /// `[kafka_properties]`: librdkafka property names and values.
    pub fn kafka_properties(&self) -> anyhow::Result<Vec<(String, String)>> {
        let Some(value) = self.table.get(KAFKA_PROPERTIES) else { return Ok(Vec::new()) };
        let Some(table) = value.as_table() else { bail!("`{KAFKA_PROPERTIES}` {}: must be a table", self.origin()) };
        table
            .iter()
            .map(|(key, value)| Ok((key.clone(), self.scalar(&format!("{KAFKA_PROPERTIES}.{key}"), value)?)))
            .collect()
    }

    /// `command` with this file's values as its flags' defaults; an unknown key, or a value the
    /// flag's parser refuses, is an error naming the key and the file.
    pub fn apply(&self, command: Command) -> anyhow::Result<Command> {
        let top = self.table.iter().map(|(key, value)| (key.clone(), vec![(key.clone(), value.clone())])).collect();
        let mut used = BTreeSet::from([KAFKA_PROPERTIES.to_string()]);
        let globals: Vec<String> =
            command.get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().to_string()).collect();
        let command = self.apply_entries(command, &top, &mut used)?;
        let mut keys = Vec::new();
        flatten(&self.table, "", &mut keys);
        let Some(key) = keys.iter().find(|key| !used.contains(*key)) else { return Ok(command) };
        let name = key.rsplit('.').next().unwrap_or(key);
        let hint = match name {
            _ if key.contains('.') && globals.iter().any(|g| g == name) => {
                format!("--{} applies to every command: set it at the top level", flag(name))
            }
            "worker_group" => "it is now `group` in a [worker] table".into(),
            "ingest_group" => "it is now `group` in an [ingest] table".into(),
            "model_alias" => "it is now `alias`".into(),
            _ => format!(
                "no flag --{} for the commands it applies to (keys are the flags of --help, with _ for -)",
                flag(name)
            ),
        };
        bail!("unknown key `{key}` {}: {hint}", self.origin())
    }

    /// Sets `command`'s flags from `entries` (flag id -> the keys that set it, the one that wins
    /// last) and goes on to its subcommands, each with its own table over `entries`.
    fn apply_entries(
        &self,
        mut command: Command,
        entries: &Entries,
        used: &mut BTreeSet<String>,
    ) -> anyhow::Result<Command> {
        let args: Vec<clap::Arg> = command
            .get_arguments()
            .filter(|a| a.get_long().is_some() && !matches!(a.get_id().as_str(), "help" | "version"))
            .cloned()
            .collect();
        for arg in args {
            let id = arg.get_id().as_str();
            let Some(stack) = entries.get(id) else { continue };
            let Some((key, value)) = stack.iter().rev().find(|(_, v)| !v.is_table()) else { continue };
            if id == "config" {
                bail!("`{key}` {}: a config file cannot name another", self.origin());
            }
            let values = self.values(key, value)?;
            if values.len() != 1 && !matches!(arg.get_action(), ArgAction::Append) {
                bail!("invalid `{key}` = {value} {}: --{} takes one value", self.origin(), flag(id));
            }
            for v in &values {
                if let Err(detail) = check(&arg, v) {
                    bail!("invalid `{key}` = {value} {}: {detail}", self.origin());
                }
            }
            // A key a command's table overrides still names a flag that exists.
            used.extend(stack.iter().filter(|(_, v)| !v.is_table()).map(|(k, _)| k.clone()));
            // A value from the file satisfies a flag the command line must otherwise give; a
            // secret (the API token) is not shown by --help as the default it now is.
            let secret = arg.is_hide_env_values_set();
            command = command.mut_arg(id, |arg| {
                arg.default_values(values.iter().map(|v| OsStr::from(v.clone())))
                    .required(false)
                    .hide_default_value(secret)
            });
        }
        let names: Vec<String> = command.get_subcommands().map(|c| c.get_name().to_string()).collect();
        for name in names {
            let mut merged = entries.clone();
            let tables = entries.get(&name).into_iter().flatten();
            for (key, section) in tables.filter_map(|(k, v)| v.as_table().map(|t| (k, t))) {
                used.insert(key.clone());
                for (k, v) in section {
                    merged.entry(k.clone()).or_default().push((format!("{key}.{k}"), v.clone()));
                }
            }
            let sub = command.find_subcommand(&name).expect("listed above").clone();
            let sub = self.apply_entries(sub, &merged, used)?;
            command = command.mut_subcommand(&name, |_| sub);
        }
        Ok(command)
    }

    /// A flag's values from a TOML value: a scalar, or an array of them (a repeated flag).
    fn values(&self, key: &str, value: &Value) -> anyhow::Result<Vec<String>> {
        match value {
            Value::Array(items) => items.iter().map(|item| self.scalar(key, item)).collect(),
            scalar => Ok(vec![self.scalar(key, scalar)?]),
        }
    }

    fn scalar(&self, key: &str, value: &Value) -> anyhow::Result<String> {
        Ok(match value {
            Value::String(s) => s.clone(),
            Value::Integer(n) => n.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => bail!("invalid `{key}` = {other} {}: expected a string, number or boolean", self.origin()),
        })
    }

    fn origin(&self) -> String {
        match &self.path {
            Some(path) => format!("in config file `{}`", path.display()),
            None => "in the config file".into(),
        }
    }
}

/// Flag id -> each (key as the file writes it, e.g. `worker.group`; its value) that sets it,
/// from the top level down to the command's own table: the last one wins.
type Entries = BTreeMap<String, Vec<(String, Value)>>;

/// Every key of `table` that names a value (`worker.group` for `[worker] group`), but the
/// Kafka properties' own keys.
fn flatten(table: &Table, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        match value {
            Value::Table(inner) if key != KAFKA_PROPERTIES => flatten(inner, &format!("{prefix}{key}."), out),
            _ => out.push(format!("{prefix}{key}")),
        }
    }
}

/// Whether the flag's own parser takes `value` (its type, range, choices), by parsing
/// `--flag=value` with a command holding that flag alone; the error is clap's, without its
/// usage lines.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().expect("flags only");
    let alone = Arg::new(arg.get_id().clone())
        .long(long.to_string())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    Command::new("autorma")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(|_| ())
        .map_err(|e| {
            let text = e.to_string();
            let lines =
                text.lines().map(str::trim).take_while(|l| !l.is_empty() && !l.starts_with("For more information"));
            lines.collect::<Vec<_>>().join(" ").trim_start_matches("error: ").to_string()
        })
}

/// The flag a file key stands for.
fn flag(key: &str) -> String {
    key.replace('_', "-")
}
