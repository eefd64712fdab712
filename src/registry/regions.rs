//! AWS commercial regions, and the `{aws_region}` placeholder registry host lists use.
//!
//! A registry file names `s3.{aws_region}.amazonaws.com` once; loading expands it to every region
//! here, so a request to `s3.ap-south-1.amazonaws.com` matches like any listed host (the policy
//! keeps its exact and one-label wildcard matching) and SigV4 signs for the region in the host
//! (`auth::sigv4::region_from_host`). Add a region here when AWS opens one.

/// Every commercial AWS region (not GovCloud, not China: those are separate partitions with their
/// own endpoints and credentials).
pub const AWS_COMMERCIAL: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
];

/// The placeholder a registry host may contain once.
pub const PLACEHOLDER: &str = "{aws_region}";

/// `hosts` with every `{aws_region}` entry replaced by one entry per region, order kept, no
/// duplicates.
pub fn expand(hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(hosts.len());
    for h in hosts {
        if h.contains(PLACEHOLDER) {
            for region in AWS_COMMERCIAL {
                let host = h.replace(PLACEHOLDER, region);
                if !out.contains(&host) {
                    out.push(host);
                }
            }
        } else if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_each_placeholder_to_every_region_and_keeps_the_rest() {
        let got = expand(&["s3.amazonaws.com".into(), "*.s3.{aws_region}.amazonaws.com".into()]);
        assert_eq!(got.len(), 1 + AWS_COMMERCIAL.len());
        assert_eq!(got[0], "s3.amazonaws.com");
        assert!(got.contains(&"*.s3.ap-south-1.amazonaws.com".to_owned()));
        for region in AWS_COMMERCIAL {
            let host = format!("bedrock-runtime.{region}.amazonaws.com");
            assert_eq!(crate::auth::sigv4::region_from_host(&host), Some(*region), "{host}");
        }
        let mut sorted = AWS_COMMERCIAL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), AWS_COMMERCIAL.len(), "no region twice");
    }
}
