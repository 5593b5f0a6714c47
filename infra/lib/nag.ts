// cdk-nag AwsSolutions on every stack. Each suppression names the rule and says why the
// finding does not apply; nothing is suppressed without a reason.
import { Aspects, Stack } from "aws-cdk-lib";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { AwsSolutionsChecks, NagSuppressions } from "cdk-nag";
import { MarketplaceStack } from "./marketplace-stack";
import { ValidatorStack } from "./validator-stack";

export function applyNag(stack: Stack): void {
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
  if (stack instanceof MarketplaceStack) suppressMarketplace(stack);
  if (stack instanceof ValidatorStack) suppressValidator(stack);
}

/** The one wildcard resource IAM5 accepts below: `"Resource": "*"`. Each suppression names
 * the single statement it covers; the assertion tests check that those statements are the
 * only ones with a wildcard resource in their policy. */
const ANY_RESOURCE = "Resource::*";

function suppressMarketplace(stack: MarketplaceStack): void {
  // The publisher's stream trigger: CDK's DynamoEventSource adds dynamodb:ListStreams on
  // "*" to the role's default policy (the stream actions themselves are on the stream ARN).
  NagSuppressions.addResourceSuppressions(
    stack.functions.publisher.role!,
    [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "dynamodb:ListStreams, which Lambda's DynamoDB stream trigger of the publisher needs, supports no resource-level permission (AWS service authorization reference: resource type '*'); it only lists stream ARNs. Every other statement of the policy names its table, stream, queue, key or log group.",
        appliesTo: [ANY_RESOURCE],
      },
    ],
    true,
  );
  const signingKey = stack.node.tryFindChild("SigningKey");
  if (signingKey instanceof Secret) {
    NagSuppressions.addResourceSuppressions(signingKey, [
      {
        id: "AwsSolutions-SMG4",
        reason:
          "The member signing key cannot be rotated by Secrets Manager alone: a new key is valid only after a rotate_key governance transaction approved by more than 2/3 of the members (docs/deploy.md, key rotation).",
      },
    ]);
  }
  for (const dlq of [stack.data.replicationDlq, stack.data.notifyDlq]) {
    NagSuppressions.addResourceSuppressions(dlq, [
      {
        id: "AwsSolutions-SQS3",
        reason: "This is a dead-letter queue itself; a dead-letter queue of a dead-letter queue would only move the problem.",
      },
    ]);
  }
  if (stack.node.tryFindChild("Vpc")) {
    NagSuppressions.addStackSuppressions(stack, [
      {
        id: "AwsSolutions-IAM4",
        reason: "AWSLambdaVPCAccessExecutionRole: the ENI actions Lambda needs in a VPC have no resource-level permissions, so a hand-written policy would be the same.",
        appliesTo: ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"],
      },
    ]);
  }
}

function suppressValidator(stack: ValidatorStack): void {
  NagSuppressions.addResourceSuppressions(
    stack.instance.role,
    [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "cloudwatch:PutMetricData (the health metrics of the validator's own check) supports no resource-level permission; the statement is scoped by a cloudwatch:namespace condition to the validator's namespace instead.",
        appliesTo: [ANY_RESOURCE],
      },
    ],
    true,
  );
  NagSuppressions.addStackSuppressions(stack, [
    {
      id: "AwsSolutions-IAM4",
      reason:
        "AmazonSSMManagedInstanceCore (Session Manager instead of SSH: no inbound admin port) and CloudWatchAgentServerPolicy (logs and host metrics) are the AWS-maintained minimum for those agents.",
      appliesTo: [
        "Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore",
        "Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy",
      ],
    },
    {
      id: "AwsSolutions-EC29",
      reason: "A single instance on purpose (it owns one validator key and one data volume); restarts come from systemd, host failures from the EC2 recovery alarm, and termination protection is on.",
    },
  ]);
}
