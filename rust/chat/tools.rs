//! What tool definitions cost in a prompt, by `OpenAI`'s published cookbook recipe for function
//! definitions.
//!
//! Per function: `func_init` + the tokens of `"{name}:{description}"` (one trailing period dropped); if it
//! has parameters, `prop_init`, and per property `prop_key` + the tokens of `"{key}:{type}:{description}"`,
//! with `enum_init` + `enum_item` and the item's tokens per item of an `enum`. Once for the list:
//! `func_end`. The defaults are the gpt-4o family's constants.
//!
//! Beyond the recipe (which reads only the top-level properties): nested object properties (of an object,
//! or of an array's items) are counted the same way, one level of `prop_init` each, so deep schemas are
//! not under-counted. A tool without a `function` (the Responses and Anthropic shapes) is read from its
//! top level (`parameters` or Anthropic's `input_schema`); a tool of another type (web search, say) costs
//! `func_init` + the tokens of its name or type.

use serde_json::{Map, Value};

use crate::error::{Result, SchedError};
use crate::tokenizer::Tokenizer;

/// The recipe's constants (signed: `enum_init` is negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolAccounting {
    pub func_init: i64,
    pub prop_init: i64,
    pub prop_key: i64,
    pub enum_init: i64,
    pub enum_item: i64,
    pub func_end: i64,
}

impl Default for ToolAccounting {
    /// The gpt-4o family's constants.
    fn default() -> Self {
        Self { func_init: 7, prop_init: 3, prop_key: 3, enum_init: -3, enum_item: 3, func_end: 12 }
    }
}

/// Tokens of a list of tool definitions: each tool's, and the total (with `func_end`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCount {
    pub total: usize,
    /// (name, tokens) of each tool, in order.
    pub tools: Vec<(String, usize)>,
}

/// The tokens of `tools`, a JSON list of tool definitions.
pub fn count_tools(tools: &str, tokenizer: Tokenizer, accounting: ToolAccounting) -> Result<ToolCount> {
    let invalid = |problem: String| SchedError::InvalidArgument(format!("tools: {problem}"));
    let value: Value = serde_json::from_str(tools).map_err(|error| invalid(format!("not valid JSON ({error})")))?;
    let Value::Array(tools) = value else { return Err(invalid("must be a list of tool definitions".to_owned())) };
    let mut count = ToolCount { total: 0, tools: Vec::with_capacity(tools.len()) };
    let mut total = 0i64;
    for (number, tool) in tools.iter().enumerate() {
        let Value::Object(tool) = tool else {
            return Err(invalid(format!("tools[{number}] must be an object, not {}", type_name(tool))));
        };
        let (name, tokens) = count_tool(tool, tokenizer, accounting);
        let tokens = usize::try_from(tokens.max(0)).unwrap_or(0);
        count.tools.push((name, tokens));
        total += i64::try_from(tokens).unwrap_or(i64::MAX);
    }
    if !tools.is_empty() {
        total += accounting.func_end;
    }
    count.total = usize::try_from(total.max(0)).unwrap_or(0);
    Ok(count)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn text<'v>(object: &'v Map<String, Value>, key: &str) -> &'v str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// One tool's name and tokens.
fn count_tool(tool: &Map<String, Value>, tokenizer: Tokenizer, accounting: ToolAccounting) -> (String, i64) {
    let function = tool.get("function").and_then(Value::as_object).unwrap_or(tool);
    let name = Some(text(function, "name")).filter(|name| !name.is_empty()).unwrap_or_else(|| text(tool, "type"));
    let description = text(function, "description");
    let line = format!("{name}:{}", description.strip_suffix('.').unwrap_or(description));
    let mut tokens = accounting.func_init + count(tokenizer, &line);
    let schema = function.get("parameters").or_else(|| function.get("input_schema")).and_then(Value::as_object);
    if let Some(listed) = schema.and_then(properties) {
        tokens += count_properties(listed, tokenizer, accounting);
    }
    (name.to_owned(), tokens)
}

/// The non-empty `properties` of an object schema.
fn properties(schema: &Map<String, Value>) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object).filter(|properties| !properties.is_empty())
}

fn count_properties(listed: &Map<String, Value>, tokenizer: Tokenizer, accounting: ToolAccounting) -> i64 {
    let mut tokens = accounting.prop_init;
    for (key, property) in listed {
        tokens += accounting.prop_key;
        let property = property.as_object();
        let field = |name: &str| property.map_or("", |property| text(property, name));
        let kind = match property.and_then(|property| property.get("type")) {
            Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            Some(Value::String(kind)) => kind.clone(),
            _ => String::new(),
        };
        if let Some(items) = property.and_then(|property| property.get("enum")).and_then(Value::as_array) {
            tokens += accounting.enum_init;
            for item in items {
                let item = item.as_str().map_or_else(|| item.to_string(), str::to_owned);
                tokens += accounting.enum_item + count(tokenizer, &item);
            }
        }
        let description = field("description");
        let line = format!("{key}:{kind}:{}", description.strip_suffix('.').unwrap_or(description));
        tokens += count(tokenizer, &line);
        // Beyond the recipe: the properties of a nested object, or of an array's items.
        let nested = property.and_then(|property| {
            properties(property).or_else(|| property.get("items").and_then(Value::as_object).and_then(properties))
        });
        if let Some(nested) = nested {
            tokens += count_properties(nested, tokenizer, accounting);
        }
    }
    tokens
}

fn count(tokenizer: Tokenizer, text: &str) -> i64 {
    i64::try_from(tokenizer.count(text)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    #[test]
    fn a_function_costs_the_recipe() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let tools = r#"[{"type": "function", "function": {"name": "get_weather", "description": "Get the weather.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "description": "The city."},
                "unit": {"type": "string", "enum": ["c", "f"]}}}}}]"#;
        let counted = count_tools(tools, tokenizer, ToolAccounting::default()).ok();
        let c = |text: &str| tokenizer.count(text);
        let expected = 7 + c("get_weather:Get the weather") + 3 + 3 + c("city:string:The city") + 3 - 3
            + 3
            + c("c")
            + 3
            + c("f")
            + c("unit:string:")
            + 12;
        assert_eq!(counted.map(|count| count.total), Some(expected));
    }

    #[test]
    fn other_shapes_and_bad_input() {
        let tokenizer = Tokenizer::new(Encoding::O200kBase);
        let accounting = ToolAccounting::default();
        let flat = r#"[{"type": "function", "name": "f", "description": "d", "parameters": {}}]"#;
        let anthropic = r#"[{"name": "f", "description": "d", "input_schema": {"type": "object"}}]"#;
        let nested = r#"[{"type": "function", "function": {"name": "f", "description": "d"}}]"#;
        let totals: Vec<Option<usize>> = [flat, anthropic, nested]
            .iter()
            .map(|tools| count_tools(tools, tokenizer, accounting).ok().map(|count| count.total))
            .collect();
        assert_eq!(totals, vec![Some(7 + tokenizer.count("f:d") + 12); 3]);
        assert_eq!(count_tools("[]", tokenizer, accounting).ok().map(|count| count.total), Some(0));
        assert!(count_tools("{}", tokenizer, accounting).is_err());
        assert!(count_tools("[3]", tokenizer, accounting).is_err());
        assert!(count_tools("[", tokenizer, accounting).is_err());
    }
}
