mod leadership;
mod sim;
mod store;
