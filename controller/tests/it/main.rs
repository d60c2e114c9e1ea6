mod acls;
mod leadership;
mod reassignment;
mod sim;
mod store;
