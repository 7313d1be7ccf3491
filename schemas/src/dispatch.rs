//! Topic → value type, in one place: [`Topic::visit`] calls a [`ValueVisitor`] with the Rust
//! type of a topic's values, so code that holds a topic at run time (the outbox relay, the
//! dead-letter tools) reaches the typed codec without a `match` of its own.
//! [`Codec::decode_json`] and [`Codec::encode_json`] are the two uses.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::events::{
    Alert, AnimeData, CommentData, Envelope, EpisodeData, LogRecord, OrganizationData,
    SubscriptionData, UserData,
};
use crate::{Codec, EncodeError, Topic, TopicValue};

/// Work generic over a topic's value type `V`.
pub trait ValueVisitor {
    /// What the work gives.
    type Output;
    /// Does the work for values of type `V`.
    fn visit<V>(self) -> Self::Output
    where
        V: TopicValue + Serialize + DeserializeOwned + Send + Sync + 'static;
}

impl Topic {
    /// Calls `visitor` with this topic's value type (`Envelope<AnimeData>` for `anime`, ...).
    pub fn visit<F: ValueVisitor>(self, visitor: F) -> F::Output {
        match self {
            Topic::User => visitor.visit::<Envelope<UserData>>(),
            Topic::Organization => visitor.visit::<Envelope<OrganizationData>>(),
            Topic::Anime => visitor.visit::<Envelope<AnimeData>>(),
            Topic::Episode => visitor.visit::<Envelope<EpisodeData>>(),
            Topic::Comment => visitor.visit::<Envelope<CommentData>>(),
            Topic::Subscription => visitor.visit::<Envelope<SubscriptionData>>(),
            Topic::Logs => visitor.visit::<LogRecord>(),
            Topic::Alerts => visitor.visit::<Alert>(),
            Topic::AnimeStats => visitor.visit::<crate::events::AnimeStat>(),
        }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Codec {
    /// Decodes a wire-format value of `topic` (preparing its writer schema through the
    /// registry) into JSON, or says why it does not decode.
    pub async fn decode_json(
        &self,
        topic: Topic,
        framed: &[u8],
    ) -> Result<serde_json::Value, String> {
        struct Decode<'a>(&'a Codec, &'a [u8]);
        impl<'a> ValueVisitor for Decode<'a> {
            type Output = Boxed<'a, Result<serde_json::Value, String>>;
            fn visit<V>(self) -> Self::Output
            where
                V: TopicValue + Serialize + DeserializeOwned + Send + Sync + 'static,
            {
                let Decode(codec, framed) = self;
                Box::pin(async move {
                    let value = codec.decode::<V>(framed).await.map_err(|e| e.to_string())?;
                    serde_json::to_value(value).map_err(|e| e.to_string())
                })
            }
        }
        topic.visit(Decode(self, framed)).await
    }

    /// Encodes the JSON form of a value of `topic` (e.g. an outbox payload) with the topic's
    /// registered schema. JSON that is not a value of the topic's type is
    /// [`EncodeError::Value`].
    pub async fn encode_json(
        &self,
        topic: Topic,
        json: &serde_json::Value,
    ) -> Result<Vec<u8>, EncodeError> {
        struct Encode<'a>(&'a Codec, &'a serde_json::Value, Topic);
        impl<'a> ValueVisitor for Encode<'a> {
            type Output = Boxed<'a, Result<Vec<u8>, EncodeError>>;
            fn visit<V>(self) -> Self::Output
            where
                V: TopicValue + Serialize + DeserializeOwned + Send + Sync + 'static,
            {
                let Encode(codec, json, topic) = self;
                Box::pin(async move {
                    let value = V::deserialize(json).map_err(|e| EncodeError::Value {
                        topic,
                        reason: format!("does not decode: {e}"),
                    })?;
                    codec.encode(&value).await
                })
            }
        }
        topic.visit(Encode(self, json, topic)).await
    }
}
