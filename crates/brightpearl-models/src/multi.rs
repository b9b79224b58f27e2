//! Multi-message bodies: each processed message's `body.content` is the message's own response
//! as a JSON-encoded string (`"{\"response\":111}"`), so it is decoded a second time here.

use crate::generated::integration::ProcessedMessageBody;

impl ProcessedMessageBody {
    /// The message's own response body, decoded from the JSON string Brightpearl sends
    /// (`Ok(None)` when there is no content; an error when the string is not JSON).
    pub fn decoded_content(&self) -> Result<Option<serde_json::Value>, serde_json::Error> {
        match self.content.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::generated::integration::MultiMessageResponse;

    #[test]
    fn content_is_a_json_string_decoded_twice() {
        // The shape of the public Java client's fixtures: content is a string of escaped JSON.
        let response: MultiMessageResponse = serde_json::from_str(
            r#"{"response":{"processedMessages":[
                {"label":"a","statusCode":200,"body":{"content":"{\"response\":111}"}},
                {"label":"b","statusCode":400,"body":{"content":"{\"errors\":[{\"code\":\"CMNC-400\",\"message\":\"bad\"}]}"}},
                {"label":"c","statusCode":200,"body":{"content":"{}"}}],
              "unprocessedMessages":["d"]}}"#,
        )
        .unwrap();
        let messages = response.response.processed_messages.unwrap();
        let content = |i: usize| {
            messages[i]
                .body
                .as_ref()
                .unwrap()
                .decoded_content()
                .unwrap()
                .unwrap()
        };
        assert_eq!(content(0)["response"], 111);
        assert_eq!(content(1)["errors"][0]["code"], "CMNC-400");
        assert_eq!(content(2), serde_json::json!({}));
        // An object where the string belongs is refused by the model, as the real API never sends it.
        let object = r#"{"response":{"processedMessages":[{"label":"a","statusCode":200,"body":{"content":{"response":1}}}]}}"#;
        assert!(serde_json::from_str::<MultiMessageResponse>(object).is_err());
    }
}
