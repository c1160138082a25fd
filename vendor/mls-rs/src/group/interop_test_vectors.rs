// Copyright Amazon.com, Inc. or its affiliates. All Rights Reserved.
// Copyright by contributors to this project.
// SPDX-License-Identifier: (Apache-2.0 OR MIT)

mod framing;
mod passive_client;
mod serialization;
mod tree_kem;
mod tree_modifications;
