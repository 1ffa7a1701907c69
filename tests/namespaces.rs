//! Namespace operations: create (with a schema), describe, list with pagination and prefix, delete.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use std::collections::HashMap;

#[tokio::test]
async fn create_describe_list_delete() {
    let env = Env::start().await;
    let schema = p::MetadataSchema {
        fields: HashMap::from([(
            "genre".to_string(),
            p::MetadataFieldProperties { filterable: true },
        )]),
    };
    let created = env
        .vectors()
        .create_namespace(req(p::CreateNamespaceRequest {
            name: "tenant-1".into(),
            schema: Some(schema),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "tenant-1");
    assert_eq!(created.record_count, 0);
    assert_eq!(created.indexed_fields.unwrap().fields, vec!["genre"]);

    let again = env
        .vectors()
        .create_namespace(req(p::CreateNamespaceRequest {
            name: "tenant-1".into(),
            schema: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

    env.seed("tenant-2", "r", 3).await;
    env.seed("other", "r", 1).await;
    let d = env
        .vectors()
        .describe_namespace(req(p::DescribeNamespaceRequest {
            namespace: "tenant-2".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.record_count, 3);

    let first = env
        .vectors()
        .list_namespaces(req(p::ListNamespacesRequest {
            pagination_token: None,
            limit: Some(1),
            prefix: Some("tenant".into()),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.namespaces.len(), 1);
    assert_eq!(first.total_count, 2);
    let second = env
        .vectors()
        .list_namespaces(req(p::ListNamespacesRequest {
            pagination_token: first.pagination.map(|p| p.next),
            limit: Some(1),
            prefix: Some("tenant".into()),
        }))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = first
        .namespaces
        .iter()
        .chain(&second.namespaces)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names, ["tenant-1", "tenant-2"]);
    assert!(second.pagination.is_none());

    env.vectors()
        .delete_namespace(req(p::DeleteNamespaceRequest {
            namespace: "tenant-1".into(),
        }))
        .await
        .unwrap();
    let all = env
        .vectors()
        .list_namespaces(req(p::ListNamespacesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = all.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["other", "tenant-2"]);
}
