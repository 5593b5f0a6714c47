// cdk-nag AwsSolutions on every stack. Each suppression names the rule and says why the
// finding does not apply; nothing is suppressed without a reason.
import { Aspects, Stack } from "aws-cdk-lib";
import { AwsSolutionsChecks, NagSuppressions } from "cdk-nag";
import { MarketplaceStack } from "./marketplace-stack";
import { ValidatorStack } from "./validator-stack";

export function applyNag(stack: Stack): void {
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
  if (stack instanceof MarketplaceStack) suppressMarketplace(stack);
  if (stack instanceof ValidatorStack) suppressValidator(stack);
}

function suppressMarketplace(stack: MarketplaceStack): void {
  NagSuppressions.addStackSuppressions(stack, [
    {
      id: "AwsSolutions-IAM5",
      reason:
        "Wildcard resources only where AWS offers no narrower one: dynamodb:ListStreams (stream trigger of the publisher), the CloudWatch service statement of the data key's own key policy (a key policy's resource is always the key itself), and the index ARNs `<table>/index/*` that CDK's table grant adds (the table has no index, so it matches nothing).",
    },
    {
      id: "AwsSolutions-SMG4",
      reason:
        "The member signing key cannot be rotated by Secrets Manager alone: a new key is valid only after a rotate_key governance transaction approved by more than 2/3 of the members (docs/deploy.md, key rotation).",
    },
    {
      id: "AwsSolutions-SQS3",
      reason: "The two flagged queues are the dead-letter queues themselves; a dead-letter queue of a dead-letter queue would only move the problem.",
    },
  ]);
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
      id: "AwsSolutions-IAM5",
      reason:
        "cloudwatch:PutMetricData has no resource-level permissions (scoped by a namespace condition instead); the asset grants read objects under the CDK asset bucket's prefix; the volume key policy's CloudWatch statement targets the key itself.",
    },
    {
      id: "AwsSolutions-EC29",
      reason: "A single instance on purpose (it owns one validator key and one data volume); restarts come from systemd, host failures from the EC2 recovery alarm, and termination protection is on.",
    },
  ]);
}
