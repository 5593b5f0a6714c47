// The data resources of a marketplace: the customer-managed key, the DynamoDB table and the
// queues. A construct of its own so that the smoke test can deploy exactly these resources
// (DataStack) into moto's CloudFormation, with the same code as production.
import { Duration, Names, RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";

/** Receives of one replication message before it moves to the dead-letter queue. */
export const REPLICATION_MAX_RECEIVES = 5;
/** Receives of one hub notification before it moves to the dead-letter queue. */
export const NOTIFY_MAX_RECEIVES = 10;
/** Function timeouts of the queue consumers; queues hide a message for six times as long,
 * as Lambda's SQS event source requires for retries to work. */
export const REPLICATOR_TIMEOUT = Duration.seconds(60);
export const NOTIFIER_TIMEOUT = Duration.seconds(120);

export class MarketplaceData extends Construct {
  readonly key: kms.Key;
  readonly table: dynamodb.Table;
  readonly notifyQueue: sqs.Queue;
  readonly notifyDlq: sqs.Queue;
  readonly replicationQueue: sqs.Queue;
  readonly replicationDlq: sqs.Queue;

  constructor(scope: Construct, id: string) {
    super(scope, id);

    // One customer-managed key for the marketplace's data at rest (table, queues, secret,
    // alarm topic, function environments): access to the data then needs the key too, and
    // CloudTrail records every use.
    this.key = new kms.Key(this, "DataKey", {
      description: "dome marketplace data at rest",
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Single-table design of docs/storage.md: PK/SK strings, on demand. The stream carries
    // only keys: the publisher uses it as a wake-up and reads the outbox itself, in order.
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: "PK", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "SK", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      stream: dynamodb.StreamViewType.KEYS_ONLY,
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.notifyDlq = new sqs.Queue(this, "NotifyDlq", {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.notifyQueue = new sqs.Queue(this, "NotifyQueue", {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(NOTIFIER_TIMEOUT.toSeconds() * 6),
      deadLetterQueue: { queue: this.notifyDlq, maxReceiveCount: NOTIFY_MAX_RECEIVES },
    });

    // FIFO, message group = entity: versions of one entity are applied in bus order, other
    // entities in parallel. Content-based deduplication makes a relay that re-sends after a
    // crash harmless within SQS's 5-minute window (the replicator is idempotent beyond it).
    // FIFO queues get explicit names: a FIFO name must end in .fifo, which CloudFormation adds
    // to generated names but moto's CloudFormation (the smoke test) does not. The names are
    // derived from the construct path, so they stay unique per stack.
    this.replicationDlq = new sqs.Queue(this, "ReplicationDlq", {
      queueName: fifoName(this, "ReplicationDlq"),
      fifo: true,
      contentBasedDeduplication: true,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.replicationQueue = new sqs.Queue(this, "ReplicationQueue", {
      queueName: fifoName(this, "ReplicationQueue"),
      fifo: true,
      contentBasedDeduplication: true,
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      enforceSSL: true,
      visibilityTimeout: Duration.seconds(REPLICATOR_TIMEOUT.toSeconds() * 6),
      deadLetterQueue: { queue: this.replicationDlq, maxReceiveCount: REPLICATION_MAX_RECEIVES },
    });
  }

  /** Lets `grantee` use the data key for exactly the given operations. */
  grantKey(grantee: iam.IGrantable, ...actions: ("kms:Decrypt" | "kms:Encrypt" | "kms:GenerateDataKey")[]): void {
    this.key.grant(grantee, ...actions);
  }
}

/** `<stack>-<path>-<hash>.fifo`, at most SQS's 80 characters. */
function fifoName(scope: Construct, id: string): string {
  return `${Names.uniqueResourceName(new Construct(scope, `${id}Name`), { maxLength: 75, separator: "-" })}.fifo`;
}
