// mod store; (helper writing it)
mod sim;
