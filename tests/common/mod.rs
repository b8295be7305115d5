//! Code shared by integration tests.

pub mod ctrgcn_fixture;
pub mod state_dict_listing;
