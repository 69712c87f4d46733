"""The deployable stack: vector store, optional KMS key, writer and reader roles, outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, RemovalPolicy, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from loader.contract import Outputs
from stacks.settings import StackSettings
from stacks.vector_store import VectorStore, create_vector_kms_key


class DocSearchStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal_policy = RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY

        kms_key: kms.IKey | None = None
        if settings.encryption.kms_key_arn is not None:
            kms_key = kms.Key.from_key_arn(self, "ExistingKey", settings.encryption.kms_key_arn)
            # An imported key's policy cannot be changed from this stack, so say what it needs.
            Annotations.of(self).add_warning_v2(
                "s3vectors:existing-kms-key-policy",
                f"kmsKeyArn: the policy of {settings.encryption.kms_key_arn} must allow the service principal "
                "indexing.s3vectors.amazonaws.com kms:Decrypt (conditions aws:SourceAccount, aws:SourceArn "
                "arn:aws:s3vectors:REGION:ACCOUNT:bucket/*), and let IAM policies of this account grant the "
                "writer and reader roles; see stacks/vector_store.py create_vector_kms_key for the statement.",
            )
        elif settings.encryption.mode == "kms":
            kms_key = create_vector_kms_key(self, "VectorKey", removal_policy=removal_policy)

        self.store = VectorStore(
            self,
            "VectorStore",
            bucket_name=settings.bucket_name,
            index_name=settings.index_name,
            dimension=settings.dimension,
            distance_metric=settings.distance_metric,
            non_filterable_metadata_keys=settings.non_filterable_metadata_keys,
            kms_key=kms_key,
            removal_policy=removal_policy,
        )

        trusted = _principal(settings.trusted_principal)
        self.writer_role = iam.Role(
            self,
            "WriterRole",
            assumed_by=trusted,
            description="Loads documents into the vector index (python -m loader --assume-role)",
        )
        self.store.grant_write(self.writer_role)
        self.reader_role = iam.Role(
            self,
            "ReaderRole",
            assumed_by=trusted,
            description="Searches the vector index (python -m loader query --assume-role)",
        )
        self.store.grant_read(self.reader_role)

        for key, value in settings.tags:
            Tags.of(self).add(key, value)

        # Declared on the stack itself so each output's logical id is exactly its contract name:
        # that is the key `cdk deploy --outputs-file` writes and the loader reads.
        outputs = {
            Outputs.VECTOR_BUCKET_NAME: self.store.bucket_name,
            Outputs.VECTOR_BUCKET_ARN: self.store.bucket_arn,
            Outputs.INDEX_NAME: self.store.index_name,
            Outputs.INDEX_ARN: self.store.index_arn,
            Outputs.DIMENSION: str(settings.dimension),
            Outputs.DISTANCE_METRIC: settings.distance_metric,
            Outputs.NON_FILTERABLE_METADATA_KEYS: ",".join(settings.non_filterable_metadata_keys),
            Outputs.WRITER_ROLE_ARN: self.writer_role.role_arn,
            Outputs.READER_ROLE_ARN: self.reader_role.role_arn,
            Outputs.REGION: self.region,
        }
        for name in Outputs.ALL:
            CfnOutput(self, name, value=outputs[name])


def _principal(trusted: str | None) -> iam.IPrincipal:
    if trusted is None:
        return iam.AccountRootPrincipal()
    if trusted.isdigit():
        return iam.AccountPrincipal(trusted)
    return iam.ArnPrincipal(trusted)
