//! Placeholders in runbook strings. The only form is `{{ param.NAME }}`; any
//! other `{{ ... }}` is an error, so a runbook cannot smuggle in templating
//! that a downstream tool (Ansible's Jinja, a shell) would evaluate.

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Lit(String),
    Param(String),
}

/// A parsed string with `{{ param.NAME }}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// Is `s` a parameter name (`[A-Za-z_][A-Za-z0-9_]*`)?
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "unclosed `{{` (placeholders are `{{ param.NAME }}`)".to_string())?;
            let inner = after[..close].trim();
            match inner.strip_prefix("param.") {
                Some(name) if is_ident(name) => segments.push(Segment::Param(name.to_string())),
                _ => {
                    return Err(format!(
                        "placeholder `{{{{ {inner} }}}}` is not of the form `{{{{ param.NAME }}}}`"
                    ));
                }
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Lit(rest.to_string()));
        }
        Ok(Template { segments })
    }

    /// Names of the parameters used, in order of appearance.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(p) => Some(p.as_str()),
            Segment::Lit(_) => None,
        })
    }

    pub fn has_params(&self) -> bool {
        self.params().next().is_some()
    }

    /// The parameter name when the whole string is exactly one placeholder.
    pub fn single_param(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [Segment::Param(p)] => Some(p),
            _ => None,
        }
    }

    /// Renders with `value(name)` for each placeholder (already escaped as
    /// the destination needs).
    pub fn render(&self, mut value: impl FnMut(&str) -> String) -> String {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Lit(l) => out.push_str(l),
                Segment::Param(p) => out.push_str(&value(p)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_placeholders() {
        let t = Template::parse("--host={{ param.host }}:{{param.port}}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Lit("--host=".into()),
                Segment::Param("host".into()),
                Segment::Lit(":".into()),
                Segment::Param("port".into()),
            ]
        );
        assert_eq!(
            Template::parse("{{ param.x }}").unwrap().single_param(),
            Some("x")
        );
        assert!(!Template::parse("plain").unwrap().has_params());
    }

    #[test]
    fn refuses_other_templating() {
        for bad in [
            "{{ x }}",
            "{{ lookup('pipe','id') }}",
            "{{ param. }}",
            "a {{ param.x",
            "{{ param.a-b }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
