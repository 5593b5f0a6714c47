// One validator organisation's deployment: CometBFT v0.38.25 and dome-abci on one EC2
// instance with a persistent encrypted data volume, keys from Secrets Manager, a stable
// address, health metrics and automatic restart/recovery.
import * as fs from "fs";
import { CfnOutput, Duration, Stack, StackProps } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import * as assets from "aws-cdk-lib/aws-s3-assets";
import * as sns from "aws-cdk-lib/aws-sns";
import * as subs from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { ConfigError, ValidatorConfig } from "./parameters";

export const COMETBFT_VERSION = "v0.38.25";
export const P2P_PORT = 26656;
export const RPC_PORT = 26657;
/** Namespace and name of the block-age metric the instance's health timer publishes. */
export const HEALTH_NAMESPACE = "Dome/Validator";
export const HEALTH_METRIC = "BlockAgeSeconds";
/** Where the data volume is mounted: CometBFT home and the ABCI app's store. */
const DATA_DIR = "/var/lib/dome";

export interface ValidatorStackProps extends StackProps {
  readonly config: ValidatorConfig;
  /** The CometBFT v0.38.25 binary for the instance's architecture. */
  readonly cometbftBinary: string;
  /** The dome-abci binary for the instance's architecture. */
  readonly abciBinary: string;
}

export class ValidatorStack extends Stack {
  readonly instance: ec2.Instance;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: ValidatorStackProps) {
    super(scope, id, props);
    const { config } = props;
    for (const [what, file] of [
      ["cometbftBinary", props.cometbftBinary],
      ["abciBinary", props.abciBinary],
    ] as const) {
      if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
        throw new ConfigError(`context ${what}: ${file} does not exist or is not a file`);
      }
    }

    // Public subnets only: a validator needs a stable public address for p2p and talks to
    // nothing private; no NAT gateway to pay for.
    const vpc = new ec2.Vpc(this, "Vpc", {
      maxAzs: 1,
      natGateways: 0,
      subnetConfiguration: [{ name: "public", subnetType: ec2.SubnetType.PUBLIC }],
    });
    vpc.addFlowLog("FlowLog", {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(new logs.LogGroup(this, "FlowLogs", { retention: logs.RetentionDays.THREE_MONTHS })),
    });

    this.securityGroup = new ec2.SecurityGroup(this, "Sg", {
      vpc,
      description: "dome validator: CometBFT p2p from the listed peers; RPC only from listed CIDRs",
      allowAllOutbound: true,
    });
    for (const cidr of config.p2pPeerCidrs) {
      this.securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(P2P_PORT), "CometBFT p2p from a peer");
    }
    // Closed unless the operator lists who may call the RPC (marketplaces' egress addresses).
    for (const cidr of config.rpcAllowedCidrs) {
      this.securityGroup.addIngressRule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(RPC_PORT), "CometBFT RPC from an allowed client");
    }

    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("ec2.amazonaws.com"),
      description: "dome validator instance",
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName("AmazonSSMManagedInstanceCore"),
        iam.ManagedPolicy.fromAwsManagedPolicyName("CloudWatchAgentServerPolicy"),
      ],
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["secretsmanager:GetSecretValue"],
        resources: [config.nodeKeySecretArn, config.validatorKeySecretArn],
      }),
    );
    // PutMetricData has no resource-level permissions; the namespace condition scopes it.
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["cloudwatch:PutMetricData"],
        resources: ["*"],
        conditions: { StringEquals: { "cloudwatch:namespace": HEALTH_NAMESPACE } },
      }),
    );

    const cometbft = new assets.Asset(this, "CometbftBinary", { path: props.cometbftBinary });
    const abci = new assets.Asset(this, "AbciBinary", { path: props.abciBinary });
    const genesis = new assets.Asset(this, "Genesis", { path: config.genesisFile });
    // Exactly the three objects (the asset grant would allow s3:GetObject*, s3:List* ...).
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["s3:GetObject"],
        resources: [cometbft, abci, genesis].map((a) => a.bucket.arnForObjects(a.s3ObjectKey)),
      }),
    );

    const volumeKey = new kms.Key(this, "VolumeKey", { description: "dome validator volumes", enableKeyRotation: true });
    const cpuType = config.architecture === "arm64" ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64;
    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      ...bootScript({
        config,
        cometbftUrl: cometbft.s3ObjectUrl,
        abciUrl: abci.s3ObjectUrl,
        genesisUrl: genesis.s3ObjectUrl,
        region: this.region,
      }),
    );

    this.instance = new ec2.Instance(this, "Instance", {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      instanceType: new ec2.InstanceType(config.instanceType),
      machineImage: ec2.MachineImage.latestAmazonLinux2023({ cpuType }),
      securityGroup: this.securityGroup,
      role,
      userData,
      requireImdsv2: true,
      detailedMonitoring: true,
      blockDevices: [
        { deviceName: "/dev/xvda", volume: ec2.BlockDeviceVolume.ebs(20, { encrypted: true, kmsKey: volumeKey, volumeType: ec2.EbsDeviceVolumeType.GP3 }) },
        // The chain, the app store and priv_validator_state.json (double-sign protection)
        // live here; it survives stop/start, recovery and even instance termination.
        {
          deviceName: "/dev/sdf",
          volume: ec2.BlockDeviceVolume.ebs(config.dataVolumeGiB, {
            encrypted: true,
            kmsKey: volumeKey,
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            deleteOnTermination: false,
          }),
        },
      ],
    });
    // Termination needs a deliberate change of this attribute: it would end the node's
    // signing history on this instance (the data volume itself is kept anyway).
    (this.instance.node.defaultChild as ec2.CfnInstance).disableApiTermination = true;

    const address = new ec2.CfnEIP(this, "Address", { domain: "vpc", instanceId: this.instance.instanceId });

    const topic = new sns.Topic(this, "Alarms", { masterKey: volumeKey, enforceSSL: true });
    volumeKey.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: ["*"],
        conditions: { StringEquals: { "aws:SourceAccount": this.account } },
      }),
    );
    if (config.alarmEmail) topic.addSubscription(new subs.EmailSubscription(config.alarmEmail));
    const notify = new cwActions.SnsAction(topic);
    const statusMetric = (name: string) =>
      new cloudwatch.Metric({
        namespace: "AWS/EC2",
        metricName: name,
        dimensionsMap: { InstanceId: this.instance.instanceId },
        period: Duration.minutes(1),
        statistic: "Maximum",
      });
    // Host failure: EC2 moves the instance to healthy hardware, keeping its volumes,
    // addresses and instance id.
    const recover = new cloudwatch.Alarm(this, "SystemCheckRecover", {
      alarmDescription: "dome validator: host failed, recovering the instance",
      metric: statusMetric("StatusCheckFailed_System"),
      threshold: 1,
      evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
    recover.addAlarmAction(new cwActions.Ec2Action(cwActions.Ec2InstanceAction.RECOVER), notify);
    const reboot = new cloudwatch.Alarm(this, "InstanceCheckReboot", {
      alarmDescription: "dome validator: operating system unresponsive, rebooting",
      metric: statusMetric("StatusCheckFailed_Instance"),
      threshold: 1,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    });
    reboot.addAlarmAction(new cwActions.Ec2Action(cwActions.Ec2InstanceAction.REBOOT), notify);
    // Processes are restarted by systemd; this catches a node that runs but no longer
    // commits blocks (stalled consensus, lost peers) or stopped reporting.
    const stalled = new cloudwatch.Alarm(this, "BlocksStalled", {
      alarmDescription: "dome validator: no new block for 2 minutes, or no health report",
      metric: new cloudwatch.Metric({
        namespace: HEALTH_NAMESPACE,
        metricName: HEALTH_METRIC,
        dimensionsMap: { Moniker: config.moniker },
        period: Duration.minutes(1),
        statistic: "Maximum",
      }),
      threshold: 120,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    stalled.addAlarmAction(notify);
    stalled.addOkAction(notify);

    new CfnOutput(this, "PublicIp", { value: address.ref, description: `peers dial <node id>@<this>:${P2P_PORT}` });
    new CfnOutput(this, "InstanceId", { value: this.instance.instanceId });
  }
}

interface BootInputs {
  readonly config: ValidatorConfig;
  readonly cometbftUrl: string;
  readonly abciUrl: string;
  readonly genesisUrl: string;
  readonly region: string;
}

/** The instance's first-boot and every-boot script (cloud-init runs user data once; the
 * units it installs start on every boot). Idempotent: a rerun keeps the chain data. */
function bootScript(b: BootInputs): string[] {
  const c = b.config;
  const home = `${DATA_DIR}/cometbft`;
  const rpcListen = c.rpcAllowedCidrs.length > 0 ? "0.0.0.0" : "127.0.0.1";
  const external = c.externalAddress ?? "";
  return [
    "set -euo pipefail",
    "dnf install -y amazon-cloudwatch-agent",
    "id dome >/dev/null 2>&1 || useradd --system --home-dir /var/lib/dome --shell /sbin/nologin dome",
    // The data volume: on Nitro instances an NVMe device; Amazon Linux's udev rules
    // (amazon-ec2-utils) link it to its block-device-mapping name /dev/sdf.
    "for i in $(seq 1 90); do [ -b /dev/sdf ] && break; sleep 2; done",
    "[ -b /dev/sdf ] || { echo 'data volume /dev/sdf not found' >&2; exit 1; }",
    "dev=$(readlink -f /dev/sdf)",
    // Format only an empty volume: a replaced or rebooted instance keeps its chain data.
    "blkid \"$dev\" >/dev/null || mkfs.xfs -L dome-data \"$dev\"",
    `mkdir -p ${DATA_DIR}`,
    `grep -q LABEL=dome-data /etc/fstab || echo 'LABEL=dome-data ${DATA_DIR} xfs defaults,nofail 0 2' >> /etc/fstab`,
    `mountpoint -q ${DATA_DIR} || mount ${DATA_DIR}`,
    `aws s3 cp --region ${b.region} ${b.cometbftUrl} /usr/local/bin/cometbft && chmod 0755 /usr/local/bin/cometbft`,
    `aws s3 cp --region ${b.region} ${b.abciUrl} /usr/local/bin/dome-abci && chmod 0755 /usr/local/bin/dome-abci`,
    `/usr/local/bin/cometbft version | grep -qx '${COMETBFT_VERSION.slice(1)}' || { echo 'cometbft is not ${COMETBFT_VERSION}' >&2; exit 1; }`,
    `[ -f ${home}/config/config.toml ] || sudo -u dome /usr/local/bin/cometbft init --home ${home}`,
    `aws s3 cp --region ${b.region} ${b.genesisUrl} ${home}/config/genesis.json`,
    // Keys come from Secrets Manager on every boot (rotation = update the secret, reboot).
    // priv_validator_state.json stays on the data volume: it is what prevents double signing.
    "umask 077",
    `aws secretsmanager get-secret-value --region ${b.region} --secret-id '${c.nodeKeySecretArn}' --query SecretString --output text > ${home}/config/node_key.json`,
    `aws secretsmanager get-secret-value --region ${b.region} --secret-id '${c.validatorKeySecretArn}' --query SecretString --output text > ${home}/config/priv_validator_key.json`,
    `chown -R dome:dome ${DATA_DIR}`,
    `cfg=${home}/config/config.toml`,
    `sed -i -e 's|^proxy_app = .*|proxy_app = "tcp://127.0.0.1:26658"|' -e 's|^moniker = .*|moniker = "${c.moniker}"|' -e 's|^log_format = .*|log_format = "json"|' "$cfg"`,
    `sed -i -e '/^\\[rpc\\]/,/^\\[/ s|^laddr = .*|laddr = "tcp://${rpcListen}:${RPC_PORT}"|' -e '/^\\[rpc\\]/,/^\\[/ s|^pprof_laddr = .*|pprof_laddr = ""|' "$cfg"`,
    `sed -i -e '/^\\[p2p\\]/,/^\\[/ s|^laddr = .*|laddr = "tcp://0.0.0.0:${P2P_PORT}"|' -e '/^\\[p2p\\]/,/^\\[/ s|^external_address = .*|external_address = "${external}"|' -e '/^\\[p2p\\]/,/^\\[/ s|^persistent_peers = .*|persistent_peers = "${c.persistentPeers.join(",")}"|' -e '/^\\[p2p\\]/,/^\\[/ s|^pex = .*|pex = false|' "$cfg"`,
    `sed -i -e '/^\\[tx_index\\]/,/^\\[/ s|^indexer = .*|indexer = "kv"|' "$cfg"`,
    "mkdir -p /var/log/dome && chown dome:dome /var/log/dome",
    "cat > /etc/systemd/system/dome-abci.service <<'UNIT'",
    "[Unit]",
    "Description=dome ABCI app",
    "After=network-online.target local-fs.target",
    `RequiresMountsFor=${DATA_DIR}`,
    "[Service]",
    "User=dome",
    `ExecStart=/usr/local/bin/dome-abci --addr 127.0.0.1:26658 --db ${DATA_DIR}/app-data --json-logs`,
    "Restart=always",
    "RestartSec=2",
    "StandardOutput=append:/var/log/dome/dome-abci.log",
    "StandardError=append:/var/log/dome/dome-abci.log",
    "LimitNOFILE=65536",
    "[Install]",
    "WantedBy=multi-user.target",
    "UNIT",
    "cat > /etc/systemd/system/cometbft.service <<'UNIT'",
    "[Unit]",
    `Description=CometBFT ${COMETBFT_VERSION}`,
    "After=dome-abci.service",
    "Requires=dome-abci.service",
    `RequiresMountsFor=${DATA_DIR}`,
    "[Service]",
    "User=dome",
    `ExecStart=/usr/local/bin/cometbft start --home ${home}`,
    "Restart=always",
    "RestartSec=2",
    "StandardOutput=append:/var/log/dome/cometbft.log",
    "StandardError=append:/var/log/dome/cometbft.log",
    "LimitNOFILE=65536",
    "[Install]",
    "WantedBy=multi-user.target",
    "UNIT",
    // Block age every minute: seconds since the latest committed block (a large value when
    // the RPC does not answer), so a stalled node raises the BlocksStalled alarm.
    "cat > /usr/local/bin/dome-health <<'SCRIPT'",
    "#!/bin/bash",
    `age=$(curl -sf --max-time 5 http://127.0.0.1:${RPC_PORT}/status | python3 -c 'import sys, json, datetime; t = json.load(sys.stdin)["result"]["sync_info"]["latest_block_time"]; t = datetime.datetime.fromisoformat(t[:26].rstrip("Z") + "+00:00") if "." in t else datetime.datetime.fromisoformat(t.replace("Z", "+00:00")); print(int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()))' 2>/dev/null || echo 86400)`,
    `aws cloudwatch put-metric-data --region ${b.region} --namespace ${HEALTH_NAMESPACE} --metric-name ${HEALTH_METRIC} --dimensions Moniker=${c.moniker} --unit Seconds --value "$age"`,
    "SCRIPT",
    "chmod 0755 /usr/local/bin/dome-health",
    "cat > /etc/systemd/system/dome-health.service <<'UNIT'",
    "[Unit]",
    "Description=dome validator health report",
    "[Service]",
    "Type=oneshot",
    "ExecStart=/usr/local/bin/dome-health",
    "UNIT",
    "cat > /etc/systemd/system/dome-health.timer <<'UNIT'",
    "[Unit]",
    "Description=dome validator health report every minute",
    "[Timer]",
    "OnBootSec=60",
    "OnUnitActiveSec=60",
    "[Install]",
    "WantedBy=timers.target",
    "UNIT",
    // Ship both logs and host metrics to CloudWatch.
    "cat > /opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json <<'JSON'",
    JSON.stringify({
      logs: {
        logs_collected: {
          files: {
            collect_list: [
              { file_path: "/var/log/dome/cometbft.log", log_group_name: `/dome/validator/${c.moniker}/cometbft`, retention_in_days: 90 },
              { file_path: "/var/log/dome/dome-abci.log", log_group_name: `/dome/validator/${c.moniker}/dome-abci`, retention_in_days: 90 },
            ],
          },
        },
      },
      metrics: {
        namespace: HEALTH_NAMESPACE,
        append_dimensions: { InstanceId: "${aws:InstanceId}" },
        metrics_collected: { disk: { measurement: ["used_percent"], resources: [DATA_DIR] }, mem: { measurement: ["mem_used_percent"] } },
      },
    }),
    "JSON",
    "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json",
    "systemctl daemon-reload",
    "systemctl enable --now dome-abci.service cometbft.service dome-health.timer",
  ];
}
