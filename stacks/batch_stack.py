"""The optional second stack: AWS Batch runs the loader as an array job, one shard per child job.

Created only with context ``batch=true`` (``app.py``); the main stack does not change when it is off.

* Compute: managed EC2 GPU instances (``ECS_AL2023_NVIDIA`` AMI, one NVIDIA GPU per job) by default, or
  Fargate (CPU only) with ``batchCompute=fargate``; spot capacity with ``batchSpot=true``.
* One job queue, one job definition running the loader image (``Dockerfile``, built by CDK as an image
  asset at deploy; synth never needs Docker).
* The job role is created here, trusted by ECS tasks of this account only, and granted exactly what a
  load needs through :meth:`VectorStore.grant_write` (index and bucket of the main stack, its KMS key if
  any) plus read access to the documents' S3 prefix. References go one way, from this stack to the main
  stack, so there is no cycle, and the main stack's writer role (trusted by people and CI) is untouched.
* Sharding: child job ``i`` of an array job of size ``N`` runs ``python -m loader load SOURCE --shard i/N``
  (``docker/entrypoint.sh`` reads ``AWS_BATCH_JOB_ARRAY_INDEX`` and ``AWS_BATCH_JOB_ARRAY_SIZE``, which
  Batch sets in every child job); ``SHARD_INDEX``/``SHARD_COUNT`` container overrides re-run one shard as a
  single job, and ``SHARD_OFFSET``/``SHARD_COUNT`` split one set of shards over several array jobs (one
  per index, each with its ``LOADER_INDEX``; the indexes are granted with ``batchExtraIndexes``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, Aws, CfnOutput, Duration, Fn, RemovalPolicy, Size, Stack, Tags, Validations
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from stacks.batch_settings import BatchSettings
from stacks.vector_store import WRITE_INDEX_ACTIONS, VectorStore

REPO_ROOT = Path(__file__).resolve().parents[1]
JOB_NAME = "s3vectors-load"
TAGS: tuple[tuple[str, str], ...] = (("project", "s3vectors-docsearch"),)

# Per-job resources. GPU: one job fills one g5/g6 .xlarge (4 vCPUs, 16 GiB, 1 GPU); ECS keeps part of
# the instance's memory for itself, so the job asks for 12 GiB. Fargate: 4 vCPUs and 8 GiB
# (a valid Fargate combination: 4 vCPU allows 8-30 GiB).
GPU_JOB_VCPUS, GPU_JOB_MEMORY_GIB = 4, 12
FARGATE_JOB_VCPUS, FARGATE_JOB_MEMORY_GIB = 4, 8
FARGATE_EPHEMERAL_STORAGE_GIB = 30
ROOT_VOLUME_GIB = 60  # the CUDA image is several GB compressed; layers are extracted on the root volume
RETRY_ATTEMPTS = 3
USAGE_ERROR_EXIT_CODE = "2"  # python -m loader: 2 = bad arguments or settings; a retry cannot help

# Built into the image context: the whitelist is .dockerignore; these are excluded again explicitly so
# that the asset's fingerprint never walks them even if .dockerignore is edited (synth stays fast and
# its hash does not depend on caches, virtual environments or other engineers' scratch files).
ASSET_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    ".local-s3vectors",
    "**/__pycache__",
    "**/*.pyc",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "tests",
    "bench",
    "data",
    "s3vectors_local",
    "stacks",
)

# Build argument of the Dockerfile: which torch wheel to install (see the Dockerfile).
TORCH_VARIANT_GPU = "cu130"
TORCH_VARIANT_CPU = "cpu"


class BatchStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        store: VectorStore,
        settings: BatchSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        vpc, subnets = self._network()
        security_group = ec2.SecurityGroup(
            self,
            "JobSecurityGroup",
            vpc=vpc,
            description="Loader jobs: no inbound traffic; outbound HTTPS to AWS APIs",
            allow_all_outbound=False,
        )
        # Everything the loader talks to (S3, S3 Vectors, ECR, CloudWatch Logs, STS) is HTTPS.
        security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS service endpoints")

        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal(
                "ecs-tasks.amazonaws.com",
                # Confused-deputy guard: only ECS tasks of this account may assume the role.
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="Role of the AWS Batch loader jobs: write the vector index, read the source documents",
        )
        store.grant_write(self.job_role)
        for name in settings.extra_indexes:
            # The same index-level actions on further indexes of the same bucket (batchExtraIndexes).
            self.job_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=list(WRITE_INDEX_ACTIONS), resources=[Fn.join("", [store.bucket_arn, "/index/", name])]
                )
            )
        self._grant_source_read(self.job_role)

        self.log_group = logs.LogGroup(
            self,
            "JobLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT),
            file="Dockerfile",
            exclude=list(ASSET_EXCLUDE),
            platform=ecr_assets.Platform.LINUX_AMD64,
            build_args={"TORCH_VARIANT": TORCH_VARIANT_GPU if settings.gpu else TORCH_VARIANT_CPU},
        )
        environment = {
            "LOADER_BUCKET": store.bucket_name,
            "LOADER_INDEX": store.index_name,
            "LOADER_REGION": Aws.REGION,
            "SOURCE": settings.source.uri,
            "LOADER_QUIET": "true",  # no progress bar in CloudWatch Logs
            "HF_HUB_OFFLINE": "1",  # the model is in the image; never reach for the network
            "TRANSFORMERS_OFFLINE": "1",
        }
        if settings.gpu:
            # Fail at once if the GPU is not visible instead of embedding at CPU speed on a GPU instance.
            environment["LOADER_DEVICE"] = "cuda"
            environment["LOADER_BATCH_SIZE"] = "256"

        # What the GPU and the Fargate container definitions have in common.
        container_props: dict[str, Any] = {
            "image": image,
            "job_role": self.job_role,
            "environment": environment,
            "logging": ecs.LogDrivers.aws_logs(stream_prefix="loader", log_group=self.log_group),
        }
        container: batch.IEcsContainerDefinition
        if settings.gpu:
            container = batch.EcsEc2ContainerDefinition(
                self,
                "Container",
                cpu=GPU_JOB_VCPUS,
                memory=Size.gibibytes(GPU_JOB_MEMORY_GIB),
                gpu=1,
                **container_props,
            )
            compute_environment: batch.IComputeEnvironment = self._gpu_compute(vpc, subnets, security_group)
        else:
            container = batch.EcsFargateContainerDefinition(
                self,
                "Container",
                cpu=FARGATE_JOB_VCPUS,
                memory=Size.gibibytes(FARGATE_JOB_MEMORY_GIB),
                ephemeral_storage_size=Size.gibibytes(FARGATE_EPHEMERAL_STORAGE_GIB),
                assign_public_ip=settings.network.assign_public_ip,
                fargate_cpu_architecture=ecs.CpuArchitecture.X86_64,
                fargate_operating_system_family=ecs.OperatingSystemFamily.LINUX,
                fargate_platform_version=ecs.FargatePlatformVersion.LATEST,
                **container_props,
            )
            compute_environment = batch.FargateComputeEnvironment(
                self,
                "FargateCompute",
                vpc=vpc,
                vpc_subnets=subnets,
                security_groups=[security_group],
                spot=settings.spot,
                maxv_cpus=settings.max_vcpus,
            )

        self.job_definition = batch.EcsJobDefinition(
            self,
            "JobDefinition",
            container=container,
            timeout=Duration.hours(settings.job_timeout_hours),
            retry_attempts=RETRY_ATTEMPTS,
            retry_strategies=[
                # A re-run shard converges (writes are idempotent, the sync state lives in the index), so
                # interrupted or failed attempts are retried; a usage error is not.
                batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_exit_code=USAGE_ERROR_EXIT_CODE)),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
                batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.NON_ZERO_EXIT_CODE),
            ],
            propagate_tags=True,
        )
        self.job_queue = batch.JobQueue(
            self,
            "JobQueue",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=compute_environment, order=1)],
            priority=1,
        )
        self._acknowledge_execution_role(container)

        for key, value in TAGS:
            Tags.of(self).add(key, value)

        CfnOutput(self, "JobQueueArn", value=self.job_queue.job_queue_arn)
        CfnOutput(self, "JobDefinitionArn", value=self.job_definition.job_definition_arn)
        CfnOutput(self, "LogGroupName", value=self.log_group.log_group_name)
        CfnOutput(self, "Source", value=settings.source.uri)
        CfnOutput(
            self,
            "SubmitJobCommand",
            description="Set SHARDS (2-10000, e.g. from `python -m loader plan`), then run this",
            value=Fn.join(
                "",
                [
                    f"aws batch submit-job --region {Aws.REGION} --job-name {JOB_NAME} --job-queue ",
                    self.job_queue.job_queue_arn,
                    " --job-definition ",
                    self.job_definition.job_definition_arn,
                    " --array-properties size=${SHARDS:?set SHARDS to the number of shards}",
                ],
            ),
        )

    # --- network -----------------------------------------------------------------------------------
    def _network(self) -> tuple[ec2.IVpc, ec2.SubnetSelection]:
        network = self.settings.network
        if network.vpc_id is not None:
            vpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=network.vpc_id, availability_zones=[Fn.select(0, Fn.get_azs())]
            )
            subnets = [
                ec2.Subnet.from_subnet_id(self, f"Subnet{i}", subnet_id)
                for i, subnet_id in enumerate(network.subnet_ids)
            ]
            return vpc, ec2.SubnetSelection(subnets=subnets)
        # Public subnets only: no NAT gateway (about 33 USD a month plus 0.045 USD per GB, and every
        # instance pulls a multi-GB image). Instances get a public IP but no inbound rule admits anything.
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.42.0.0/16"),
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="jobs", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20)
            ],
        )
        # S3 traffic (documents, and ECR's image layers, which live in S3) stays on the AWS network; free.
        vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(
                    self,
                    "FlowLogs",
                    retention=logs.RetentionDays.ONE_MONTH,
                    removal_policy=RemovalPolicy.DESTROY,
                )
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        return vpc, ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)

    # --- compute -----------------------------------------------------------------------------------
    def _gpu_compute(
        self, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, security_group: ec2.ISecurityGroup
    ) -> batch.ManagedEc2EcsComputeEnvironment:
        settings = self.settings
        launch_template = ec2.LaunchTemplate(
            self,
            "GpuLaunchTemplate",
            # Only the ECS agent (host network) reaches the instance metadata service: IMDSv2 with one
            # hop keeps containers from reading the instance role's credentials.
            require_imdsv2=True,
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",  # the root device of the ECS AL2023 AMIs
                    volume=ec2.BlockDeviceVolume.ebs(
                        ROOT_VOLUME_GIB, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3
                    ),
                )
            ],
        )
        compute = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "GpuCompute",
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            instance_types=[ec2.InstanceType(instance_type) for instance_type in settings.instance_types],
            use_optimal_instance_classes=False,
            images=[batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA)],
            launch_template=launch_template,
            spot=settings.spot,
            allocation_strategy=(
                batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
                if settings.spot
                else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE
            ),
            minv_cpus=0,  # nothing runs (or costs) between loads
            maxv_cpus=settings.max_vcpus,
        )
        assert compute.instance_role is not None  # created by the construct when none is given
        _acknowledge(
            compute.instance_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonEC2ContainerServiceforEC2Role]",
            "The ECS container instance role of a Batch managed compute environment: the ECS agent needs "
            "AmazonEC2ContainerServiceforEC2Role (https://docs.aws.amazon.com/batch/latest/userguide/"
            "instance_IAM_role.html). Jobs do not use it: they run with the job role, and IMDSv2 with a hop "
            "limit of 1 keeps containers from reading these credentials.",
        )
        return compute

    # --- permissions -------------------------------------------------------------------------------
    def _grant_source_read(self, role: iam.Role) -> None:
        """s3:ListBucket limited to the prefix, s3:GetObject on objects under it (and the key, if any)."""
        source = self.settings.source
        bucket_arn = f"arn:{Aws.PARTITION}:s3:::{source.bucket}"
        list_condition = {"StringLike": {"s3:prefix": [source.prefix, f"{source.prefix}*"]}} if source.prefix else None
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn], conditions=list_condition)
        )
        objects_arn = f"{bucket_arn}/{source.prefix}*"
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects_arn]))
        _acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{source.bucket}/{source.prefix}*]",
            "Read access to the documents under the source prefix (sourceBucket/sourcePrefix): object keys are "
            "not known at deploy time, and s3:GetObject's resource is the object ARN, so the grant is the "
            "prefix followed by '*' - no other object of the bucket, and nothing writable.",
        )
        if source.kms_key_arn is not None:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[source.kms_key_arn],
                    # Only to read the objects through S3, not to decrypt anything else with the key.
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
                )
            )

    def _acknowledge_execution_role(self, container: batch.IEcsContainerDefinition) -> None:
        execution_role = container.execution_role
        _acknowledge(
            execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "The execution role pulls the loader image from the CDK assets repository: ecr:GetAuthorizationToken "
            "has no resource-level permissions (Service Authorization Reference, Amazon ECR: 'Resource types: "
            "none'), so its only possible resource is '*'. The layer and log actions of the same role are "
            "scoped to the repository and the job log group.",
        )


def _acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
